/*
 * test_intern.c - task names and labels are copied on first sight, the same
 * text gets the same id, and a full table degrades to a placeholder.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flightrec.h"
#include "helpers.h"

static struct frd_dump *dump_now(void)
{
    char path[512];
    cr_assert_eq(fr_dump("intern", path, sizeof path), 0);
    return th_open(path);
}

static const struct frd_thread *me(struct frd_dump *d)
{
    const struct frd_thread *t = th_thread(d, (uint32_t)th_gettid());
    cr_assert_not_null(t);
    return t;
}

Test(intern, freed_strings_are_safe_and_same_text_same_id)
{
    struct fr_config cfg = { .dump_dir = th_tmpdir() };
    cr_assert_eq(fr_init(&cfg), 0);
    char *a = strdup("handle_request");
    char *b = strdup("handle_request");
    fr_spawn(1, 0, a);
    fr_spawn(2, 0, b);
    memset(a, 'X', strlen(a)); /* the recorder must have copied it */
    free(a);
    free(b);
    struct frd_dump *d = dump_now();
    const struct frd_thread *t = me(d);
    cr_assert_eq(t->nevents, 2);
    cr_assert_eq(t->events[0].str, t->events[1].str, "same text, different ids");
    cr_assert_str_eq(th_string(d, t->events[0].str), "handle_request");
    frd_close(d);
    fr_shutdown();
}

Test(intern, long_strings_are_truncated_not_lost)
{
    struct fr_config cfg = { .dump_dir = th_tmpdir() };
    cr_assert_eq(fr_init(&cfg), 0);
    char big[1000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    fr_await(5, big);
    fr_await(5, "");
    fr_mark(5, NULL);
    struct frd_dump *d = dump_now();
    const struct frd_thread *t = me(d);
    cr_assert_eq(t->nevents, 3);
    const char *s = th_string(d, t->events[0].str);
    cr_assert_not_null(s);
    cr_assert_eq(strlen(s), 255);
    cr_assert_str_eq(th_string(d, t->events[1].str), "");
    cr_assert_eq(t->events[2].str, 0, "NULL label is id 0");
    frd_close(d);
    fr_shutdown();
}

Test(intern, full_table_gives_placeholder, .timeout = 60)
{
    struct fr_config cfg = { .dump_dir = th_tmpdir(), .ring_bytes = 8u << 20 };
    cr_assert_eq(fr_init(&cfg), 0);
    enum { N = 40000 };
    char name[64];
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "unique-name-%d-%0*d", i, 20, i);
        fr_spawn((uint64_t)i + 1, 0, name);
    }
    fr_spawn(N + 1, 0, "unique-name-0-00000000000000000000"); /* seen first: still known */
    struct frd_dump *d = dump_now();
    const struct frd_thread *t = me(d);
    cr_assert_eq(t->nevents, N + 1);
    size_t overflow = 0, named = 0;
    for (size_t i = 0; i < t->nevents; i++) {
        if (t->events[i].str == FR_STRING_OVERFLOW) {
            overflow++;
            continue;
        }
        const char *s = th_string(d, t->events[i].str);
        cr_assert_not_null(s, "event %zu has unknown string id %u", i, t->events[i].str);
        if (i < N) {
            snprintf(name, sizeof name, "unique-name-%zu-%0*zu", i, 20, i);
            cr_assert_str_eq(s, name);
        }
        named++;
    }
    cr_assert_gt(overflow, 0, "the table never filled up");
    cr_assert_gt(named, 4000, "only %zu names kept", named);
    cr_assert_neq(t->events[N].str, FR_STRING_OVERFLOW, "a known name must still resolve");
    frd_close(d);
    fr_shutdown();
}

Test(intern, reused_buffer_with_new_text_is_not_confused)
{
    struct fr_config cfg = { .dump_dir = th_tmpdir() };
    cr_assert_eq(fr_init(&cfg), 0);
    char buf[32];
    strcpy(buf, "first label");
    fr_await(1, buf);
    fr_await(1, buf); /* the same pointer and text: a memo hit */
    strcpy(buf, "second");
    fr_await(1, buf); /* the same pointer, other text */
    strcpy(buf, "first label!");
    fr_await(1, buf); /* a longer text with the old one as prefix */
    struct frd_dump *d = dump_now();
    const struct frd_thread *t = me(d);
    cr_assert_eq(t->nevents, 4);
    cr_assert_str_eq(th_string(d, t->events[0].str), "first label");
    cr_assert_str_eq(th_string(d, t->events[1].str), "first label");
    cr_assert_str_eq(th_string(d, t->events[2].str), "second");
    cr_assert_str_eq(th_string(d, t->events[3].str), "first label!");
    frd_close(d);
    fr_shutdown();
}

/* The memo's compare (whole words, the last one overlapping) at every length
 * and every position of a one-byte change, and with the text cut short. */
Test(intern, reused_buffer_changed_anywhere_at_any_length)
{
    struct fr_config cfg = { .dump_dir = th_tmpdir(), .ring_bytes = 1u << 20 };
    cr_assert_eq(fr_init(&cfg), 0);
    static char buf[48], want[48][48][3][48];
    size_t n = 0;
    for (size_t len = 1; len < 40; len++) {
        for (size_t at = 0; at < len; at++) {
            memset(buf, 0, sizeof buf);
            for (size_t i = 0; i < len; i++)
                buf[i] = (char)('a' + (i % 26));
            fr_mark(1, buf); /* seen: memoized */
            snprintf(want[len][at][0], sizeof want[len][at][0], "%s", buf);
            buf[at] = 'Z'; /* same pointer, one byte other */
            fr_mark(1, buf);
            snprintf(want[len][at][1], sizeof want[len][at][1], "%s", buf);
            buf[at] = '\0'; /* same pointer, text cut short there */
            fr_mark(1, buf);
            snprintf(want[len][at][2], sizeof want[len][at][2], "%s", buf);
            n += 3;
        }
    }
    struct frd_dump *d = dump_now();
    const struct frd_thread *t = me(d);
    cr_assert_eq(t->nevents, n);
    size_t k = 0;
    for (size_t len = 1; len < 40; len++)
        for (size_t at = 0; at < len; at++)
            for (int v = 0; v < 3; v++, k++)
                cr_assert_str_eq(th_string(d, t->events[k].str), want[len][at][v],
                                 "length %zu, change at %zu, variant %d", len, at, v);
    frd_close(d);
    fr_shutdown();
}

/* Internal (recorder/intern.c): the test links the recorder statically. */
void fr__intern_find_readonly(void);
int fr__intern_readonly(const char *s, size_t bytes);

/* The memo trusts a string by its address only in the main program's
 * read-only segments: literals and const arrays, never a buffer that can be
 * written, nor a shared library's text (it can be unmapped). */
Test(intern, only_the_programs_read_only_strings_are_trusted_by_address)
{
    struct fr_config cfg = { .dump_dir = th_tmpdir() };
    cr_assert_eq(fr_init(&cfg), 0);
    static const char konst[] = "a const array";
    static char writable[] = "a static buffer";
    char stack[16] = "on the stack";
    char *heap = strdup("on the heap");
    cr_assert_not_null(heap);
    const char *lit = "a literal";
    cr_assert(fr__intern_readonly(lit, strlen(lit) + 1));
    cr_assert(fr__intern_readonly(konst, sizeof konst));
    cr_assert_not(fr__intern_readonly(writable, sizeof writable));
    cr_assert_not(fr__intern_readonly(stack, sizeof stack));
    cr_assert_not(fr__intern_readonly(heap, strlen(heap) + 1));
    const char *libc_text = strsignal(SIGSEGV); /* glibc's own table, or a buffer */
    cr_assert_not(fr__intern_readonly(libc_text, strlen(libc_text) + 1));
    cr_assert_not(fr__intern_readonly(NULL, 1));
    /* a trusted literal and a buffer holding the same text get one id */
    strcpy(stack, "a literal");
    fr_await(1, lit);
    fr_await(1, lit); /* a hit on the address alone */
    fr_await(1, stack);
    fr_await(1, lit);
    struct frd_dump *d = dump_now();
    const struct frd_thread *t = me(d);
    cr_assert_eq(t->nevents, 4);
    for (int i = 0; i < 4; i++)
        cr_assert_str_eq(th_string(d, t->events[i].str), "a literal", "event %d", i);
    cr_assert_eq(t->events[0].str, t->events[2].str);
    cr_assert_eq(t->events[1].str, t->events[3].str);
    free(heap);
    frd_close(d);
    fr_shutdown();
}
