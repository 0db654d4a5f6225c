/*
 * adapter.c - what the preloaded runtime adapters (recorder/adapters/) need
 * from the library and cannot keep themselves: state that must be one per
 * process even when both adapters are loaded, each with its own copy of the
 * shared wrappers (recorder/adapters/common.c). Not public API.
 */
#include "internal.h"

/* How deep the calling thread is in the adapters' poller wrappers: with both
 * adapters preloaded, epoll_wait() runs through two wrappers, and only the
 * outermost records park and unpark. Initial-exec like fr__w: read twice per
 * epoll_wait, it must not cost a __tls_get_addr call each time (the library
 * is loaded at start, never dlopen'ed after threads exist). */
static __thread unsigned poller_depth __attribute__((tls_model("initial-exec")));

/* fr__poller_enter - Return: 1 if this is the outermost wrapper on the thread. */
FR_API int fr__poller_enter(void)
{
    return poller_depth++ == 0;
}

/* fr__poller_leave - Return: 1 if this was the outermost wrapper. */
FR_API int fr__poller_leave(void)
{
    return --poller_depth == 0;
}
