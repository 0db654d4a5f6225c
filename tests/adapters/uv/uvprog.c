/*
 * uvprog.c - small libuv programs for the libuv adapter's tests (check.py).
 * They know nothing of flightrec: the adapter is preloaded.
 *
 *   uvprog SCENARIO      block | block-clean | pool-stuck | pool-clean |
 *                        rearm-forgot | rearm-clean | crash | crash-clean | churn |
 *                        tcp
 *
 * Prints "cb NAME 0xADDR" for the callbacks the test looks for (so it can
 * match a task name whether or not the decoder symbolized it), then "ready"
 * once the scenario has played out. It then idles in its loop until SIGTERM
 * (a uv_signal handle), closes every handle and exits 0; "crash" dies in a
 * timer callback instead.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

static const char *scenario;
static int bug;
static uv_loop_t *loop;
static uv_signal_t sigterm;
static uv_timer_t slow, tick, later, writer, rearm;
static uv_pipe_t reader;
static int pair[2];
static pthread_mutex_t held = PTHREAD_MUTEX_INITIALIZER;
static uv_work_t work;
static int writes, reads;
static volatile int *volatile nowhere; /* NULL, opaque to the compiler */

static void ready(void)
{
    printf("ready\n");
    fflush(stdout);
}

/* Busy for @ms of this thread's CPU time: work that holds its thread that
 * long even on a loaded machine (where waiting for a CPU, which the run-delay
 * sampler tells apart, would make up the rest of the wall time). */
static void spin_ms(int ms)
{
    struct timespec a, b;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);
    do
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);
    while ((b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000 < ms);
}

static void close_one(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void on_sigterm(uv_signal_t *h, int signum)
{
    (void)h;
    (void)signum;
    if (!strncmp(scenario, "pool", 4) && bug)
        pthread_mutex_unlock(&held); /* let the stuck work finish */
    uv_walk(loop, close_one, NULL);
}

/* ---- block: a timer callback that blocks the loop ----------------------- */

static void slow_cb(uv_timer_t *h)
{
    (void)h;
    spin_ms(bug ? 300 : 1);
}

static void tick_cb(uv_timer_t *h)
{
    (void)h;
}

static void later_cb(uv_timer_t *h)
{
    (void)h;
    ready();
}

/* ---- pool: a work item stuck on a lock ---------------------------------- */

static void stuck_work_cb(uv_work_t *req)
{
    (void)req;
    pthread_mutex_lock(&held);
    pthread_mutex_unlock(&held);
}

static void after_work_cb(uv_work_t *req, int status)
{
    (void)req;
    (void)status;
}

/* ---- rearm: a read callback that stops reading -------------------------- */

static void alloc_cb(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    static char mem[256];
    (void)h;
    (void)size;
    *buf = uv_buf_init(mem, sizeof mem);
}

static void rearm_cb(uv_timer_t *h);

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    if (nread <= 0)
        return;
    reads++;
    /* pause reading (back-pressure); the bug is never resuming */
    uv_read_stop(s);
    if (!bug)
        uv_timer_start(&rearm, rearm_cb, 5, 0);
}

static void rearm_cb(uv_timer_t *h)
{
    (void)h;
    uv_read_start((uv_stream_t *)&reader, alloc_cb, on_read);
}

static void writer_cb(uv_timer_t *h)
{
    if (write(pair[1], "x", 1) != 1)
        abort();
    if (++writes == 6) {
        uv_timer_stop(h);
        ready();
    }
}

/* ---- churn: 55 000 handles and requests come and go -------------------- */

#define CHURN_TOTAL 50000
#define CHURN_LIVE 2000
static long churn_started, churn_fired, churn_closed, churn_worked, churn_bad;

static void churn_closed_cb(uv_handle_t *h)
{
    churn_closed++;
    free(h);
}

static void churn_start(void);

static void churn_cb(uv_timer_t *h)
{
    /* what the program stored is what it reads back */
    if (h->data == NULL || *(long *)h->data <= 0 || uv_handle_get_data((uv_handle_t *)h) != h->data)
        churn_bad++;
    free(h->data);
    churn_fired++;
    uv_close((uv_handle_t *)h, churn_closed_cb);
    churn_start();
}

static void churn_work_cb(uv_work_t *req)
{
    if (req->data != (void *)req)
        churn_bad++;
}

static void churn_after_cb(uv_work_t *req, int status)
{
    if (status != 0 || req->data != (void *)req)
        churn_bad++;
    churn_worked++;
    free(req);
}

static void churn_start(void)
{
    if (churn_started == CHURN_TOTAL) {
        if (churn_fired == CHURN_TOTAL)
            ready();
        return;
    }
    churn_started++;
    uv_timer_t *t = malloc(sizeof *t);
    long *tag = malloc(sizeof *tag);
    *tag = churn_started;
    uv_timer_init(loop, t);
    t->data = tag;
    /* 1 ms, not 0: a 0 ms timer started by a timer callback runs in the same
     * pass, and 100 000 of them would keep the loop from its I/O */
    if (uv_timer_start(t, churn_cb, 1, 0) != 0)
        churn_bad++;
    if (churn_started % 10 == 0) {
        uv_work_t *w = malloc(sizeof *w);
        w->data = w;
        if (uv_queue_work(loop, w, churn_work_cb, churn_after_cb) != 0)
            churn_bad++;
    }
}

/* ---- tcp: an echo server and its client on one loop ---------------------- */

#define ECHO_ROUNDS 50
static uv_tcp_t server, client, conn;
static uv_connect_t connect_req;
static uv_shutdown_t shutdown_req;
static int echoed, pings;
static char ping[] = "ping";

struct wreq {
    uv_write_t req;
    char buf[256];
};

static void echo_written(uv_write_t *req, int status)
{
    if (status)
        churn_bad++;
    free(req->data);
}

static void write_copy(uv_stream_t *s, const char *p, size_t n)
{
    struct wreq *w = malloc(sizeof *w);
    memcpy(w->buf, p, n);
    w->req.data = w;
    uv_buf_t b = uv_buf_init(w->buf, (unsigned)n);
    if (uv_write(&w->req, s, &b, 1, echo_written))
        churn_bad++;
}

static void server_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    if (nread > 0)
        write_copy(s, buf->base, (size_t)nread);
    else if (nread < 0)
        uv_close((uv_handle_t *)s, NULL);
}

static void on_connection(uv_stream_t *srv, int status)
{
    if (status || uv_tcp_init(loop, &conn) || uv_accept(srv, (uv_stream_t *)&conn))
        abort();
    uv_read_start((uv_stream_t *)&conn, alloc_cb, server_read);
}

static void client_shut(uv_shutdown_t *req, int status)
{
    (void)req;
    (void)status;
    ready();
}

static void client_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    if (nread <= 0)
        return;
    echoed += (int)nread;
    if (echoed == pings * 4 && pings < ECHO_ROUNDS) {
        pings++;
        write_copy(s, ping, 4);
    } else if (echoed == ECHO_ROUNDS * 4) {
        uv_shutdown(&shutdown_req, s, client_shut);
    }
}

static void on_connect(uv_connect_t *req, int status)
{
    if (status)
        abort();
    uv_read_start(req->handle, alloc_cb, client_read);
    pings = 1;
    write_copy(req->handle, ping, 4);
}

static void tcp_start(void)
{
    struct sockaddr_in addr;
    int len = sizeof addr;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    uv_tcp_init(loop, &server);
    uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0);
    if (uv_listen((uv_stream_t *)&server, 16, on_connection))
        abort();
    uv_tcp_getsockname(&server, (struct sockaddr *)&addr, &len);
    uv_tcp_init(loop, &client);
    uv_tcp_connect(&connect_req, &client, (const struct sockaddr *)&addr, on_connect);
}

/* ---- crash: a timer callback that dies ---------------------------------- */

/* A real invalid store, not UBSan's to report: the test wants the crash. */
__attribute__((no_sanitize("undefined"))) static void crash_cb(uv_timer_t *h)
{
    (void)h;
    ready();
    if (bug) {
        usleep(200000); /* let the test see "ready" */
        *nowhere = 1;
    }
}

int main(int argc, char **argv); /* uvprog_main in uvprog-mod.so (../local.c) */

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: uvprog SCENARIO\n");
        return 2;
    }
    scenario = argv[1];
    bug = strstr(scenario, "-clean") == NULL;
    loop = uv_default_loop();
    uv_signal_init(loop, &sigterm);
    uv_signal_start(&sigterm, on_sigterm, SIGTERM);

    if (!strncmp(scenario, "block", 5)) {
        printf("cb slow_cb %p\ncb tick_cb %p\n", (void *)slow_cb, (void *)tick_cb);
        uv_timer_init(loop, &slow);
        uv_timer_init(loop, &tick);
        uv_timer_init(loop, &later);
        uv_timer_start(&slow, slow_cb, 50, 0); /* both due in the same pass: */
        uv_timer_start(&tick, tick_cb, 50, 0); /* tick runs after slow */
        uv_timer_start(&later, later_cb, 500, 0);
    } else if (!strncmp(scenario, "pool", 4)) {
        printf("cb stuck_work_cb %p\n", (void *)stuck_work_cb);
        if (bug)
            pthread_mutex_lock(&held);
        uv_queue_work(loop, &work, stuck_work_cb, after_work_cb);
        uv_timer_init(loop, &later);
        uv_timer_start(&later, later_cb, 500, 0);
    } else if (!strncmp(scenario, "rearm", 5)) {
        printf("cb on_read %p\n", (void *)on_read);
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, pair))
            return 1;
        uv_pipe_init(loop, &reader, 0);
        uv_pipe_open(&reader, pair[0]);
        uv_read_start((uv_stream_t *)&reader, alloc_cb, on_read);
        uv_timer_init(loop, &rearm);
        uv_timer_init(loop, &writer);
        uv_timer_start(&writer, writer_cb, 50, 50);
    } else if (!strcmp(scenario, "tcp")) {
        printf("cb server_read %p\ncb client_read %p\ncb on_connection %p\n",
               (void *)server_read, (void *)client_read, (void *)on_connection);
        printf("cb echo_written %p\ncb on_connect %p\ncb client_shut %p\n",
               (void *)echo_written, (void *)on_connect, (void *)client_shut);
        tcp_start();
    } else if (!strcmp(scenario, "churn")) {
        for (int i = 0; i < CHURN_LIVE; i++)
            churn_start();
    } else if (!strncmp(scenario, "crash", 5)) {
        printf("cb crash_cb %p\n", (void *)crash_cb);
        uv_timer_init(loop, &slow);
        uv_timer_start(&slow, crash_cb, 100, 0);
    } else {
        fprintf(stderr, "uvprog: unknown scenario %s\n", scenario);
        return 2;
    }
    fflush(stdout);
    uv_run(loop, UV_RUN_DEFAULT);
    if (!strncmp(scenario, "rearm", 5))
        printf("reads %d\n", reads);
    if (!strcmp(scenario, "tcp"))
        printf("tcp echoed %d bad %ld\n", echoed, churn_bad);
    if (!strcmp(scenario, "churn"))
        printf("churn fired %ld closed %ld worked %ld bad %ld\n", churn_fired, churn_closed,
               churn_worked, churn_bad);
    uv_loop_close(loop);
    return 0;
}
