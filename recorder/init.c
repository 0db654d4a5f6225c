/*
 * init.c - the recorder's lifecycle: fr_init, fr_shutdown, fr_dump, and what
 * a fork child needs.
 *
 * fr_init resolves the configuration (struct fr_config, then the environment,
 * then defaults), prepares everything a crash handler will need (workspaces,
 * process info, clock), starts the dumper thread, installs the handlers, and
 * only then publishes a new epoch, which is what turns the hooks on.
 *
 * It also pins the object that holds the recorder (libflightrec.so, or a
 * plugin linked with libflightrec.a) in memory: once running, the handlers,
 * the dumper and unwinder threads and the thread-exit destructor point into
 * its code, and a dlclose() must not unmap it (the shared library is also
 * linked with -z nodelete; the pin covers the static one inside a plugin).
 */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

struct fr_settings fr__cfg;
static pthread_mutex_t life_lock = PTHREAD_MUTEX_INITIALIZER; /* fr_init/fr_shutdown only */
static int running;
static uint32_t last_epoch;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static uint32_t next_epoch(void)
{
    uint32_t e = last_epoch + 1;
    if (e == 0 || e == UINT32_MAX)
        e = 1;
    last_epoch = e;
    return e;
}

/* fork: the child has one thread and fresh rings; its dumps are its own. */
static void atfork_child(void)
{
    if (!running)
        return;
    fr__registry_reset();
    fr__spawns_reset(); /* the parent's tasks are not the child's */
    fr__dump_reset_after_fork();
    fr__crash_reset_after_fork();
    fr__dumper_restart_in_child();
    fr__shared_after_fork();
    fr__watchdog_restart_in_child();
    fr__run_delay_restart_in_child();
    atomic_store_explicit(&fr__epoch, next_epoch(), FR_RELEASE);
    life_lock = (pthread_mutex_t)PTHREAD_MUTEX_INITIALIZER;
}

/* Keep the object holding this code loaded for the life of the process. */
static void pin_self(void)
{
    Dl_info info;
    if (!dladdr((void *)pin_self, &info) || !info.dli_fname || !info.dli_fname[0])
        return;
    void *h = dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
    if (h)
        dlclose(h); /* the NODELETE flag stays; only our extra reference goes */
}

static void atfork_register(void)
{
    pthread_atfork(NULL, NULL, atfork_child);
}

/*
 * A dump directory taken from the environment: not read at all in a set-user-
 * or set-group-ID program (secure_getenv: the invoking user must not choose
 * where a privileged process writes), and refused (-EINVAL) if it holds a
 * control character, which no sane directory name has and which would forge
 * lines in the messages that print it. Length is checked by resolve_dir.
 */
static int env_dir(const char **dir)
{
    const char *v = secure_getenv("FLIGHTREC_DIR");
    *dir = NULL;
    if (!v || !*v)
        return 0;
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return -EINVAL;
    *dir = v;
    return 0;
}

/* The dump directory as an absolute path, so a later chdir() by the
 * application does not move where dumps go. Environment input is checked
 * (env_dir); no empty path, nothing that does not fit PATH_MAX. */
static int resolve_dir(const char *dir, char *out, size_t cap)
{
    if (!dir || !*dir) {
        int err = env_dir(&dir);
        if (err)
            return err;
        if (!dir)
            dir = ".";
    }
    if (strlen(dir) >= cap - 1)
        return -ENAMETOOLONG;
    if (dir[0] == '/') {
        fr__strlcpy(out, dir, cap);
    } else {
        if (!getcwd(out, cap))
            return -errno;
        size_t n = strlen(out);
        if (n + 1 + strlen(dir) >= cap)
            return -ENAMETOOLONG;
        if (strcmp(dir, ".") != 0) {
            out[n] = '/';
            fr__strlcpy(out + n + 1, dir, cap - n - 1);
        }
    }
    size_t n = strlen(out);
    while (n > 1 && out[n - 1] == '/')
        out[--n] = '\0';
    return 0;
}

/* The optional triggers (watchdog.c, termination.c, shared.c): the config's
 * fields first, else the environment, validated like the rest. */
static int resolve_triggers(const struct fr_config *cfg)
{
    fr__cfg.stall_ms = cfg->stall_ms;
    int err = fr__watchdog_parse_env();
    if (err)
        return err;
    fr__cfg.dump_on = cfg->dump_on;
    const char *v = secure_getenv("FLIGHTREC_DUMP_ON");
    if (!fr__cfg.dump_on && v && *v && fr__termination_parse(v, &fr__cfg.dump_on) != 0)
        return -EINVAL;
    v = secure_getenv("FLIGHTREC_SHARED_RINGS");
    if (v && *v) {
        if (strcmp(v, "1") == 0)
            fr__cfg.flags |= FR_SHARED_RINGS;
        else if (strcmp(v, "0") != 0)
            return -EINVAL;
    }
    return 0;
}

/* Environment @name set to "0" or "1": the one that is @sets adds @flag to
 * the configuration's flags, the other leaves them. -EINVAL for any other
 * value; 0 when unset or empty. */
static int env_switch(const char *name, int sets, unsigned flag)
{
    const char *v = secure_getenv(name);
    if (!v || !*v)
        return 0;
    if (strcmp(v, "0") != 0 && strcmp(v, "1") != 0)
        return -EINVAL;
    if ((v[0] == '1') == (sets == 1))
        fr__cfg.flags |= flag;
    return 0;
}

static int resolve_config(const struct fr_config *cfg)
{
    struct fr_config zero = { 0 };
    if (!cfg)
        cfg = &zero;
    memset(&fr__cfg, 0, sizeof fr__cfg);
    int err = resolve_dir(cfg->dump_dir, fr__cfg.dump_dir, sizeof fr__cfg.dump_dir);
    if (err)
        return err;

    size_t ring = cfg->ring_bytes;
    if (!ring) {
        const char *kb = secure_getenv("FLIGHTREC_RING_KB"); /* digits only, bounded */
        ring = FR_DEFAULT_RING_BYTES;
        if (kb && *kb) {
            char *end;
            errno = 0;
            unsigned long long v = strtoull(kb, &end, 10);
            if (errno || *end || v == 0 || v > (1ull << 22)) /* up to 4 GiB */
                return -EINVAL;
            ring = (size_t)v * 1024;
        }
    }
    if (ring < FR_MIN_RING_BYTES)
        return -EINVAL;
    fr__cfg.ring_bytes = ring / FR_PAGE_SIZE * FR_PAGE_SIZE;

    if (cfg->dump_signal == 0) {
        /* FLIGHTREC_SIGNAL: a name or number, "none", or "auto" (the default) */
        const char *v = secure_getenv("FLIGHTREC_SIGNAL");
        int sig = (v && *v) ? fr__signal_parse(v) : 0;
        if (sig == -EINVAL)
            return -EINVAL;
        fr__cfg.dump_signal = sig == 0 ? SIGUSR1 : sig;
        fr__cfg.dump_signal_fixed = sig != 0;
    } else if (cfg->dump_signal < 0) {
        fr__cfg.dump_signal = -1;
        fr__cfg.dump_signal_fixed = 1;
    }
    else if (cfg->dump_signal >= NSIG || cfg->dump_signal == SIGKILL ||
             cfg->dump_signal == SIGSTOP || cfg->dump_signal == SIGSEGV ||
             cfg->dump_signal == SIGBUS || cfg->dump_signal == SIGILL ||
             cfg->dump_signal == SIGFPE || cfg->dump_signal == SIGABRT)
        return -EINVAL;
    else {
        fr__cfg.dump_signal = cfg->dump_signal;
        fr__cfg.dump_signal_fixed = 1;
    }
    fr__cfg.flags = cfg->flags;
    if (env_switch("FLIGHTREC_CHAIN_FIRST", 1, FR_CHAIN_FIRST) ||
        env_switch("FLIGHTREC_SPAWN_TABLE", 0, FR_NO_SPAWN_TABLE) ||
        env_switch("FLIGHTREC_RUN_DELAY", 0, FR_NO_RUN_DELAY))
        return -EINVAL;
    fr__cfg.max_dumps = cfg->max_dumps ? cfg->max_dumps : FR_DEFAULT_MAX_DUMPS;
    return resolve_triggers(cfg);
}

/* fr_init's body; abi.c (the shared library, two symbol versions) and
 * abi_static.c (the static library) define fr_init itself. */
int fr__init(const struct fr_config *cfg)
{
    pthread_mutex_lock(&life_lock);
    int err = running ? -EALREADY : 0;
    if (!err)
        err = resolve_config(cfg);
    if (!err)
        err = fr__registry_init();
    if (!err)
        err = fr__dump_init();
    if (!err)
        err = fr__spawns_init(!(fr__cfg.flags & FR_NO_SPAWN_TABLE));
    if (err) {
        pthread_mutex_unlock(&life_lock);
        return err;
    }
    struct stat st;
    if (stat(fr__cfg.dump_dir, &st) != 0 || !S_ISDIR(st.st_mode))
        fr__warn("dump directory is not usable yet (dumps will fail until it is)",
                 fr__cfg.dump_dir, errno);

    fr__clock_init();
    fr__procinfo_init();
    fr__registry_reset();
    fr__intern_reset();
    fr__intern_find_readonly();
    pthread_once(&atfork_once, atfork_register);
    pin_self();

    err = (fr__cfg.flags & FR_SHARED_RINGS) ? fr__shared_open() : 0;
    if (!err)
        err = fr__dumper_start();
    if (!err)
        err = fr__crash_install();
    if (!err)
        err = fr__termination_install();
    if (!err)
        err = fr__watchdog_start();
    if (!err)
        err = fr__run_delay_start();
    if (err) {
        fr__watchdog_stop();
        fr__termination_uninstall();
        fr__crash_uninstall();
        fr__dumper_stop();
        fr__shared_close();
        fr__dump_fini();
        pthread_mutex_unlock(&life_lock);
        return err;
    }
    running = 1;
    /* Turn the hooks on: pairs with the acquire load in fr__writer_attach. */
    atomic_store_explicit(&fr__epoch, next_epoch(), FR_RELEASE);
    __atomic_store_n(&fr__recording, 1, __ATOMIC_RELEASE); /* the header's inline gates */
    fr__writer_attach(&fr__w); /* the calling thread: ring and altstack now */
    pthread_mutex_unlock(&life_lock);
    return 0;
}

FR_API void fr_shutdown(void)
{
    pthread_mutex_lock(&life_lock);
    if (running) {
        __atomic_store_n(&fr__recording, 0, __ATOMIC_RELEASE);
        atomic_store_explicit(&fr__epoch, 0, FR_RELEASE);
        fr__run_delay_stop();
        fr__watchdog_stop();
        fr__termination_uninstall();
        fr__crash_uninstall();
        fr__dumper_stop();
        fr__shared_close();
        fr__dump_fini();
        running = 0;
    }
    pthread_mutex_unlock(&life_lock);
}

FR_API int fr_dump(const char *reason, char *path, size_t path_size)
{
    if (atomic_load_explicit(&fr__epoch, FR_ACQUIRE) == 0)
        return -ENOTCONN;
    if (path && path_size)
        path[0] = '\0';
    fr__writer_flush(); /* a dump from inside a poll holds that poll's events so far */
    int err = fr__dump_lock(10000);
    if (err)
        return err;
    err = fr__dump_write(FR_CTX_NORMAL, FR_TRIGGER_API, 0, reason ? reason : "api", NULL, path,
                         path_size);
    fr__dump_unlock();
    return err;
}
