/*
 * planted.c - small real libevent 2.1 programs for the libevent adapter's
 * tests (check.py runs them with libflightrec-event.so preloaded, decodes
 * the dump and checks the findings). Each planted bug has a clean twin that
 * runs the same code without the bug.
 *
 *   planted blocking|blocking-clean   two connections ready in the same
 *       round; the first callback (slow_read, higher priority) sleeps 300 ms
 *       in the bug, not in the twin; the second (fast_read) waits behind it
 *   planted forget|forget-clean       a non-persistent read event whose
 *       callback (forgetful_read) does not add it again in the bug; the peer's
 *       second message is then never read
 *   planted crash|crash-clean         a timer callback (crashing_timer) that
 *       writes through a null pointer in the bug
 *   planted api                       what libevent's calls return, with or
 *       without the adapter: callbacks, arguments, event_self_cbarg,
 *       event_get_assignment, event_base_once, finalizers, bufferevents,
 *       event_active from another thread, error returns
 *
 * Output: "key=value" lines on stdout (task ids are the struct event
 * addresses, code addresses in lowercase hex), "dump=<path>" when the adapter
 * wrote a dump (fr_dump found with dlsym: the program itself does not link
 * flightrec). Servers bind 127.0.0.1 only; every loop ends on a timer.
 */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static struct event_base *base;

static void die(const char *what)
{
    fprintf(stderr, "planted: %s: %s\n", what, strerror(errno));
    exit(2);
}

static void say_event(const char *key, const struct event *ev)
{
    printf("%s=%llu\n", key, (unsigned long long)(uintptr_t)ev);
}

static void say_code(const char *key, void (*fn)(evutil_socket_t, short, void *))
{
    printf("%s=0x%llx\n", key, (unsigned long long)(uintptr_t)fn);
}

/* Dump through the preloaded recorder, if any. */
static void dump_now(void)
{
    int (*dump)(const char *, char *, size_t) =
        (int (*)(const char *, char *, size_t))dlsym(RTLD_DEFAULT, "fr_dump");
    char path[4096];
    if (dump && dump("planted", path, sizeof(path)) == 0)
        printf("dump=%s\n", path);
    fflush(stdout);
}

/* A connected pair of TCP sockets on 127.0.0.1: *srv accepted, *cli the peer. */
static void tcp_pair(int lfd, int *srv, int *cli)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    if (getsockname(lfd, (struct sockaddr *)&a, &len) != 0)
        die("getsockname");
    *cli = socket(AF_INET, SOCK_STREAM, 0);
    if (*cli < 0 || connect(*cli, (struct sockaddr *)&a, sizeof(a)) != 0)
        die("connect");
    *srv = accept(lfd, NULL, NULL);
    if (*srv < 0)
        die("accept");
    evutil_make_socket_nonblocking(*srv);
}

static int listener(void)
{
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(lfd, 8) != 0)
        die("listen");
    return lfd;
}

static void send_byte(int fd)
{
    if (write(fd, "x", 1) != 1)
        die("write");
}

static void stop_loop(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    event_base_loopbreak(base);
}

static void run_for_ms(int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    struct event *stop = evtimer_new(base, stop_loop, NULL);
    evtimer_add(stop, &tv);
    event_base_dispatch(base);
    event_free(stop);
}

/* ---- blocking ------------------------------------------------------------ */

static int planted_bug;

static void drain(int fd)
{
    char buf[64];
    while (read(fd, buf, sizeof(buf)) > 0) {
    }
}

static void slow_read(evutil_socket_t fd, short what, void *arg)
{
    (void)what, (void)arg;
    drain(fd);
    if (planted_bug)
        usleep(300 * 1000); /* the bug: a blocking call in a loop callback */
}

static void fast_read(evutil_socket_t fd, short what, void *arg)
{
    (void)what, (void)arg;
    drain(fd);
}

static void send_both(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    int *cli = arg;
    send_byte(cli[0]);
    send_byte(cli[1]);
}

static int blocking(void)
{
    if (event_base_priority_init(base, 2) != 0)
        die("priority_init");
    int lfd = listener(), srv[2], cli[2];
    tcp_pair(lfd, &srv[0], &cli[0]);
    tcp_pair(lfd, &srv[1], &cli[1]);
    struct event *slow = event_new(base, srv[0], EV_READ | EV_PERSIST, slow_read, NULL);
    struct event *fast = event_new(base, srv[1], EV_READ | EV_PERSIST, fast_read, NULL);
    event_priority_set(slow, 0); /* runs first when both are ready */
    event_priority_set(fast, 1);
    event_add(slow, NULL);
    event_add(fast, NULL);
    say_event("slow_task", slow);
    say_event("fast_task", fast);
    say_code("slow_cb", slow_read);
    say_code("fast_cb", fast_read);
    /* both bytes are written from one callback, so the poller sees both
     * connections ready in the same round */
    struct timeval soon = {0, 20 * 1000};
    event_base_once(base, -1, EV_TIMEOUT, send_both, cli, &soon);
    run_for_ms(500);
    dump_now();
    event_free(slow);
    event_free(fast);
    for (int i = 0; i < 2; i++) {
        close(srv[i]);
        close(cli[i]);
    }
    close(lfd);
    return 0;
}

/* ---- forget -------------------------------------------------------------- */

static struct event *forget_ev;

static void forgetful_read(evutil_socket_t fd, short what, void *arg)
{
    (void)what, (void)arg;
    drain(fd);
    if (!planted_bug)
        event_add(forget_ev, NULL); /* the bug: this line missing */
}

static void send_one(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    send_byte(*(int *)arg);
}

static int forget(void)
{
    int lfd = listener(), srv, cli;
    tcp_pair(lfd, &srv, &cli);
    forget_ev = event_new(base, srv, EV_READ, forgetful_read, NULL); /* not persistent */
    event_add(forget_ev, NULL);
    say_event("forget_task", forget_ev);
    say_code("forget_cb", forgetful_read);
    struct timeval t1 = {0, 20 * 1000}, t2 = {0, 60 * 1000};
    event_base_once(base, -1, EV_TIMEOUT, send_one, &cli, &t1);
    event_base_once(base, -1, EV_TIMEOUT, send_one, &cli, &t2);
    run_for_ms(700);
    dump_now();
    event_free(forget_ev);
    close(srv);
    close(cli);
    close(lfd);
    return 0;
}

/* ---- crash --------------------------------------------------------------- */

static void crashing_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    if (planted_bug)
        *(volatile int *)arg = 1; /* the bug: arg is no valid pointer */
}

static int crash(void)
{
    /* an unmapped address, not NULL: a real SIGSEGV under the sanitizers too
     * (UBSan stops at a null store before it faults) */
    struct event *t = evtimer_new(base, crashing_timer, (void *)(uintptr_t)64);
    say_event("crash_task", t);
    say_code("crash_cb", crashing_timer);
    fflush(stdout);
    struct timeval tv = {0, 20 * 1000};
    evtimer_add(t, &tv);
    run_for_ms(100);
    dump_now();
    event_free(t);
    return 0;
}

/* ---- api ----------------------------------------------------------------- */

/* evthread_use_pthreads (libevent_pthreads): event_active from another thread */
static int evthread_use_pthreads_ok(void)
{
    static int r = -2;
    if (r == -2)
        r = evthread_use_pthreads();
    return r == 0;
}

static int failures;

static void expect(int ok, const char *what)
{
    printf("%s %s\n", ok ? "ok" : "FAIL", what);
    failures += !ok;
}

static void *seen_arg;
static int seen_calls;

static void note_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    seen_arg = arg;
    seen_calls++;
}

static void *fin_arg;
static void note_fin(struct event *ev, void *arg)
{
    (void)ev;
    fin_arg = arg;
}

static int bev_reads;
static void bev_read(struct bufferevent *bev, void *arg)
{
    char buf[16];
    bufferevent_read(bev, buf, sizeof(buf));
    bev_reads += arg == (void *)bev;
    bufferevent_free(bev); /* freed inside its own callback */
}

static int accepted;
static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                      int socklen, void *arg)
{
    (void)l, (void)sa, (void)socklen;
    accepted += arg == (void *)&accepted;
    close(fd);
}

static void *activator(void *p)
{
    event_active(p, EV_READ, 1);
    return NULL;
}

static int api(void)
{
    int marker = 0;
    struct event *ev = event_new(base, -1, 0, note_cb, &marker);
    expect(event_get_callback(ev) == note_cb, "event_get_callback gives the program's callback");
    expect(event_get_callback_arg(ev) == &marker, "event_get_callback_arg gives its argument");
    struct event_base *b = NULL;
    evutil_socket_t fd = 7;
    short events = 99;
    event_callback_fn cb = NULL;
    void *arg = NULL;
    event_get_assignment(ev, &b, &fd, &events, &cb, &arg);
    expect(b == base && fd == -1 && events == 0 && cb == note_cb && arg == &marker,
           "event_get_assignment gives what was assigned");
    event_get_assignment(ev, NULL, NULL, NULL, NULL, NULL);
    struct timeval zero = {0, 0};
    expect(event_add(ev, &zero) == 0, "event_add returns 0");
    event_base_loop(base, EVLOOP_ONCE);
    expect(seen_calls == 1 && seen_arg == &marker, "the callback runs once with its argument");
    expect(event_del(ev) == 0, "event_del returns 0");
    event_free(ev);

    struct event *self = event_new(base, -1, 0, note_cb, event_self_cbarg());
    expect(event_get_callback_arg(self) == self, "event_self_cbarg: the argument is the event");
    event_active(self, EV_TIMEOUT, 1);
    event_base_loop(base, EVLOOP_ONCE);
    expect(seen_arg == self && seen_calls == 2, "event_self_cbarg: the callback gets the event");

    struct event stack_ev;
    expect(event_assign(&stack_ev, base, SIGUSR2, EV_SIGNAL | EV_READ, note_cb, NULL) == -1,
           "event_assign EV_SIGNAL|EV_READ returns -1");
    expect(event_assign(&stack_ev, base, -1, 0, note_cb, &marker) == 0,
           "event_assign returns 0");
    expect(event_get_callback(&stack_ev) == note_cb, "an assigned event gives its callback back");
    expect(event_base_once(base, -1, EV_TIMEOUT | EV_PERSIST, note_cb, NULL, NULL) == -1,
           "event_base_once with EV_PERSIST returns -1");
    expect(event_base_once(base, -1, EV_TIMEOUT, note_cb, &marker, &zero) == 0,
           "event_base_once returns 0");
    seen_arg = NULL;
    event_base_loop(base, EVLOOP_ONCE);
    expect(seen_arg == &marker && seen_calls == 3, "event_base_once's callback gets its argument");
    expect(event_base_once(base, -1, EV_TIMEOUT, note_cb, &marker, NULL) == 0,
           "event_base_once without a time returns 0");
    event_base_loop(base, EVLOOP_ONCE);
    expect(seen_calls == 4, "event_base_once without a time runs at once");

    /* a finalizer is given the program's argument */
    struct event *fin = event_new(base, -1, 0, note_cb, &marker);
    expect(event_free_finalize(0, fin, note_fin) == 0, "event_free_finalize returns 0");
    event_base_loop(base, EVLOOP_NONBLOCK);
    expect(fin_arg == &marker, "the finalizer gets the event's argument");

    /* event_active from another thread wakes the loop and runs the callback */
    if (evthread_use_pthreads_ok()) {
        struct event *act = event_new(base, -1, EV_PERSIST, note_cb, &marker);
        event_add(act, NULL);
        pthread_t th;
        pthread_create(&th, NULL, activator, act);
        pthread_join(th, NULL);
        event_base_loop(base, EVLOOP_ONCE);
        expect(seen_calls == 5, "event_active from another thread runs the callback");
        event_free(act);
    } else {
        seen_calls = 5;
    }

    /* a signal event: libevent's own socketpair event (wrapped too) hands it on */
    struct event *sig = evsignal_new(base, SIGUSR2, note_cb, &marker);
    expect(evsignal_add(sig, NULL) == 0, "evsignal_add returns 0");
    raise(SIGUSR2);
    event_base_loop(base, EVLOOP_ONCE);
    expect(seen_calls == 6 && seen_arg == &marker, "a signal event's callback runs");
    expect(evsignal_del(sig) == 0, "evsignal_del returns 0");
    event_free(sig);

    /* a bufferevent freed inside its own read callback */
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        die("socketpair");
    evutil_make_socket_nonblocking(sv[0]);
    struct bufferevent *bev = bufferevent_socket_new(base, sv[0], BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(bev, bev_read, NULL, NULL, bev);
    bufferevent_enable(bev, EV_READ);
    send_byte(sv[1]);
    run_for_ms(50);
    expect(bev_reads == 1, "a bufferevent's read callback gets its argument and may free it");
    close(sv[1]);

    /* an evconnlistener: its event is libevent's, the callback ours */
    struct sockaddr_in la = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct evconnlistener *lev = evconnlistener_new_bind(
        base, on_accept, &accepted, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 8,
        (struct sockaddr *)&la, sizeof(la));
    expect(lev != NULL, "evconnlistener_new_bind gives a listener");
    if (lev) {
        struct sockaddr_in got;
        socklen_t glen = sizeof(got);
        getsockname(evconnlistener_get_fd(lev), (struct sockaddr *)&got, &glen);
        int c = socket(AF_INET, SOCK_STREAM, 0);
        if (c < 0 || connect(c, (struct sockaddr *)&got, glen) != 0)
            die("connect");
        run_for_ms(50);
        expect(accepted == 1, "the listener's callback gets the connection and its argument");
        close(c);
        evconnlistener_free(lev);
    }

    errno = 0;
    expect(event_del(&stack_ev) == 0 && errno == 0, "event_del of a non-added event: 0, errno kept");
    event_free(self);
    printf("failures=%d\n", failures);
    say_code("note_cb", note_cb);
    printf("accept_cb=0x%llx\n", (unsigned long long)(uintptr_t)on_accept);
    dump_now();
    return failures ? 1 : 0;
}

int main(int argc, char **argv); /* planted_main in event_planted-mod.so (../local.c) */

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: planted blocking|forget|crash[-clean]|api\n");
        return 2;
    }
    const char *mode = argv[1];
    planted_bug = strstr(mode, "-clean") == NULL;
    setvbuf(stdout, NULL, _IOLBF, 0);
    evthread_use_pthreads_ok();
    base = event_base_new();
    if (!base)
        die("event_base_new");
    int r;
    if (strncmp(mode, "blocking", 8) == 0)
        r = blocking();
    else if (strncmp(mode, "forget", 6) == 0)
        r = forget();
    else if (strncmp(mode, "crash", 5) == 0)
        r = crash();
    else if (strcmp(mode, "api") == 0)
        r = api();
    else {
        fprintf(stderr, "planted: unknown mode %s\n", mode);
        return 2;
    }
    event_base_free(base);
    return r;
}
