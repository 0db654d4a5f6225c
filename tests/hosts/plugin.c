/*
 * plugin.c - a plugin with the recorder linked in statically, as a host would
 * load it with dlopen and later dlclose it. It starts recording and a thread
 * that records until the host releases it (after dlclose).
 */
#include <pthread.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "flightrec.h"

__attribute__((visibility("default"))) int plugin_start(const char *dir, int release);
__attribute__((visibility("default"))) void plugin_stop(void);

static int release_fd;
static volatile pid_t worker_tid;

static void *worker(void *arg)
{
    (void)arg;
    worker_tid = (pid_t)syscall(SYS_gettid);
    fr_thread_name("plugin-worker");
    for (uint64_t i = 1; i <= 1000; i++) {
        fr_spawn(i, 0, "plugin task");
        fr_poll_begin(i);
        fr_poll_end(i, FR_READY);
    }
    char c;
    while (read(release_fd, &c, 1) < 0) {
    }
    fr_mark(1, "released"); /* a hook after fr_shutdown: a no-op */
    return NULL; /* the thread-exit destructor runs now, after dlclose */
}

/* Start recording into @dir and the worker, which waits for a byte on
 * @release. Return: the worker's tid, or -1. */
__attribute__((visibility("default"))) int plugin_start(const char *dir, int release)
{
    struct fr_config cfg = { .dump_dir = dir };
    if (fr_init(&cfg) != 0)
        return -1;
    release_fd = release;
    pthread_t t;
    if (pthread_create(&t, NULL, worker, NULL) != 0)
        return -1;
    pthread_detach(t);
    while (!worker_tid)
        usleep(1000);
    return (int)worker_tid;
}

__attribute__((visibility("default"))) void plugin_stop(void)
{
    fr_shutdown();
}
