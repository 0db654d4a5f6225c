/*
 * hooks_off.h - force-included (-include) when the benchmarks build a second
 * copy of the demo runtime with the recorder compiled out: every hook call in
 * tools/runtime/ (runtime.c, timer.c, event.c) becomes a no-op that still evaluates its arguments, as
 * the FR_* macros do under -DFLIGHTREC_DISABLE. The demo runtime calls the
 * hooks directly, so the define alone would not remove them.
 */
#ifndef FR_BENCH_HOOKS_OFF_H
#define FR_BENCH_HOOKS_OFF_H

#include <flightrec.h> /* first, so its declarations are not macro-expanded */

#define fr_spawn(task, parent, name) ((void)(task), (void)(parent), (void)(name))
#define fr_poll_begin(task) ((void)(task))
#define fr_poll_end(task, res) ((void)(task), (void)(res))
#define fr_await(task, label) ((void)(task), (void)(label))
#define fr_wake(task) ((void)(task))
#define fr_waker_clone(task) ((void)(task))
#define fr_waker_drop(task) ((void)(task))
#define fr_park() ((void)0)
#define fr_unpark() ((void)0)
#define fr_drop(task) ((void)(task))
#define fr_mark(task, label) ((void)(task), (void)(label))
#define fr_thread_name(name) ((void)(name))

#endif /* FR_BENCH_HOOKS_OFF_H */
