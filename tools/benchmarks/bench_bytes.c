/*
 * bench_bytes.c - ring bytes consumed per event on the mixed sequence.
 *
 * Linked against the static library so that it can read its own writer's
 * state (recorder/internal.h): a fresh thread records N events and the bytes
 * it used are whole pages started (headers and the unused tail of each page
 * included) plus the used part of the current page. Prints "name value" lines.
 *
 *   bench-bytes [--iters SEQUENCES] [--dir DUMP_DIR]
 */
#include <pthread.h>
#include <stdio.h>

#include "bench.h"
#include "internal.h"

static uint64_t iters = 200000;
static double bytes_per_event, events_per_mib;

static void *recorder_thread(void *arg)
{
    (void)arg;
    for (uint64_t i = 0; i < iters; i++) {
        uint64_t id = 1000 + i;
        BENCH_SEQUENCE(fr_, id);
    }
    struct fr_writer *w = &fr__w;
    uint64_t pages = atomic_load(&w->slot->ring.pages_started);
    double bytes = (double)(pages - 1) * FR_PAGE_SIZE + FR_PAGE_HEADER_SIZE +
                   (double)(w->pos - w->page->data);
    bytes_per_event = bytes / (double)(iters * BENCH_EVENTS_PER_SEQ);
    events_per_mib = 1048576.0 / bytes_per_event;
    return NULL;
}

int main(int argc, char **argv)
{
    iters = (uint64_t)bench_arg_int(argc, argv, "--iters", 200000);
    struct fr_config cfg = {.dump_dir = bench_arg_str(argc, argv, "--dir", NULL)};
    int rc = fr_init(&cfg);
    if (rc < 0) {
        fprintf(stderr, "bench-bytes: fr_init: %s\n", strerror(-rc));
        return 1;
    }
    pthread_t th;
    if (pthread_create(&th, NULL, recorder_thread, NULL) != 0)
        return 1;
    pthread_join(th, NULL);
    printf("bytes_per_event %.3f\nevents_per_mib %.0f\n", bytes_per_event, events_per_mib);
    fr_shutdown();
    return 0;
}
