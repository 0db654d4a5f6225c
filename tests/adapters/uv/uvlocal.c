/*
 * uvlocal.c - uvprog's scenarios run from a module that links libuv
 * (uvprog-mod.so, uvprog.c built with main renamed uvprog_main), loaded
 * with dlopen(RTLD_LOCAL) by this program, which does not link libuv: the
 * shape of Python importing uvloop. libuv then is not in the global scope,
 * so the adapter's dlsym(RTLD_NEXT) cannot see it; its calls to its own
 * exported functions (uv_loop_init's uv_async_init) still reach the adapter.
 *
 *   uvlocal SCENARIO     as uvprog; the module is looked for beside uvlocal
 */
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    char path[PATH_MAX];
    const char *mod = "uvprog-mod.so";
    ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - strlen(mod) - 1);
    if (n <= 0)
        return 1;
    path[n] = '\0';
    char *slash = strrchr(path, '/');
    if (!slash)
        return 1;
    strcpy(slash + 1, mod);
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        fprintf(stderr, "uvlocal: %s\n", dlerror());
        return 1;
    }
    int (*real_main)(int, char **);
    *(void **)&real_main = dlsym(h, "uvprog_main");
    if (!real_main) {
        fprintf(stderr, "uvlocal: %s\n", dlerror());
        return 1;
    }
    return real_main(argc, argv);
}
