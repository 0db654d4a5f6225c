/*
 * local.c - a test program of an adapter's suite run from a module that
 * links the event loop's library (MODULE: the program built as a shared
 * module, its main renamed ENTRY), loaded with dlopen(RTLD_LOCAL) by this
 * launcher, which links no loop library: the shape of Python importing
 * uvloop. The library then is not in the global scope, so the adapter's
 * dlsym(RTLD_NEXT) cannot see it, yet its calls to its own exported
 * functions (libuv's uv_loop_init calling uv_async_init, libevent's
 * event_base_new calling event_assign) still reach the adapter.
 *
 *   LAUNCHER ARGS...     as the program; MODULE is looked for beside it
 */
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    char path[PATH_MAX];
    const char *mod = MODULE;
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
        fprintf(stderr, "%s: %s\n", argv[0], dlerror());
        return 1;
    }
    int (*real_main)(int, char **);
    *(void **)&real_main = dlsym(h, ENTRY);
    if (!real_main) {
        fprintf(stderr, "%s: %s\n", argv[0], dlerror());
        return 1;
    }
    return real_main(argc, argv);
}
