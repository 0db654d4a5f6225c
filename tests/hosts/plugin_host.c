/*
 * plugin_host.c - a host program that does not link flightrec: it has its own
 * SIGUSR1 handler, loads tests/hosts/plugin.c with dlopen, lets it record,
 * dlcloses it (with or without the plugin's fr_shutdown first), releases the
 * plugin's recording thread and waits for it to exit, then raises SIGUSR1
 * (and, still recording, the dump signal, which moved off SIGUSR1) and calls
 * abort().
 *
 *   plugin_host PLUGIN DUMP_DIR shutdown|noshutdown MARKER
 *
 * MARKER is created by the host's own SIGUSR1 handler. Exit codes below 10
 * would be a bug of this program; the test expects death by SIGABRT.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *marker;

static void host_usr1(int sig)
{
    (void)sig;
    int fd = open(marker, O_WRONLY | O_CREAT, 0600);
    if (fd >= 0)
        close(fd);
}

static int has_dump(const char *dir)
{
    DIR *d = opendir(dir);
    int found = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        if (strncmp(e->d_name, "flightrec-", 10) == 0)
            found = 1;
    if (d)
        closedir(d);
    return found;
}

/* The dump signal, from the dumper thread's name ("flightrec:sig12"). */
static int dump_signal(void)
{
    DIR *d = opendir("/proc/self/task");
    int sig = -1;
    for (struct dirent *e; d && (e = readdir(d));) {
        char p[300], comm[32] = "";
        snprintf(p, sizeof p, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(p, "r");
        if (!f)
            continue;
        if (fgets(comm, sizeof comm, f) && strncmp(comm, "flightrec:sig", 13) == 0)
            sig = atoi(comm + 13);
        fclose(f);
    }
    if (d)
        closedir(d);
    return sig;
}

int main(int argc, char **argv)
{
    if (argc != 5)
        return 2;
    marker = argv[4];
    int shutdown_first = strcmp(argv[3], "shutdown") == 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = host_usr1;
    sigaction(SIGUSR1, &sa, NULL);

    int rel[2];
    if (pipe(rel) != 0)
        return 3;
    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        return 4;
    }
    int (*start)(const char *, int) = (int (*)(const char *, int))dlsym(h, "plugin_start");
    void (*stop)(void) = (void (*)(void))dlsym(h, "plugin_stop");
    if (!start || !stop)
        return 5;
    int tid = start(argv[2], rel[0]);
    if (tid <= 0)
        return 6;
    if (shutdown_first)
        stop();
    dlclose(h);

    /* The recording thread exits now, its thread-exit destructor with it. */
    if (write(rel[1], "x", 1) != 1)
        return 7;
    char task[64];
    snprintf(task, sizeof task, "/proc/self/task/%d", tid);
    struct stat st;
    for (int i = 0; i < 5000 && stat(task, &st) == 0; i++)
        usleep(1000);
    if (stat(task, &st) == 0)
        return 8;

    raise(SIGUSR1); /* the host's own: flightrec left it alone */
    if (!shutdown_first) {
        /* Still recording: the dump signal (which moved off the host's
         * SIGUSR1) is served by the pinned recorder's dumper thread. */
        int sig = dump_signal();
        if (sig <= 0)
            return 9;
        raise(sig);
        for (int i = 0; i < 5000 && !has_dump(argv[2]); i++)
            usleep(1000);
    }
    abort();
}
