/*
 * tests/decoder/test_symbols.c - code addresses in names and labels
 * ("@0x<hex>", format.h) read as symbols in every view: a task named after
 * one of this program's functions (.symtab) and one after libc's write, a
 * stripped library's function and a point inside it (.dynsym only:
 * function, function+0xoff), this program's ELF header (module+0xoff), an
 * await label carrying a call site (a return address minus 1: function and
 * file:line), an address in no mapping kept as it was;
 * --raw-addresses keeps them all; a dump whose strings are all tokens decodes
 * through every command.
 */
#include <criterion/criterion.h>
#include <dlfcn.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "flightrec.h"
#include "helpers.h"
#include "scenario.h"

/* The callback a task is named after: its address is the function's start. */
__attribute__((noinline)) void sym_refresh_cb(void);
__attribute__((noinline)) void sym_refresh_cb(void)
{
    __asm__ volatile("" ::: "memory");
}

/* Records an await whose label is the caller's return address minus 1, as
 * the adapters do for a start call. */
__attribute__((noinline)) static void await_from_caller(uint64_t task)
{
    char label[64];
    uintptr_t ret = (uintptr_t)__builtin_return_address(0) - 1;
    snprintf(label, sizeof(label), "uv_read_start @0x%lx", (unsigned long)ret);
    fr_await(task, label);
}

int symlib_exported_cb(int x); /* symlib.c, linked stripped */

static int call_line; /* the line of the call in symbols_start_reading */

__attribute__((noinline)) void symbols_start_reading(uint64_t task);
__attribute__((noinline)) void symbols_start_reading(uint64_t task)
{
    call_line = __LINE__ + 1;
    await_from_caller(task);
    __asm__ volatile("" ::: "memory"); /* no tail call: the return address stays here */
}

/* Where this program's file is mapped from offset 0: its load address. */
static int first_object(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    *(uintptr_t *)arg = info->dlpi_addr;
    return 1; /* the program comes first */
}

static uintptr_t exe_base(void)
{
    uintptr_t base = 0;
    dl_iterate_phdr(first_object, &base);
    cr_assert_neq(base, 0, "the test program is built position-independent");
    return base;
}

static void record(char *path)
{
    char name[128];
    sc_recorder_start(0);
    snprintf(name, sizeof(name), "timer @0x%lx", (unsigned long)(uintptr_t)&sym_refresh_cb);
    fr_spawn(1, 0, name);
    ssize_t (*w)(int, const void *, size_t) = write;
    snprintf(name, sizeof(name), "writer @0x%lx", (unsigned long)(uintptr_t)w);
    fr_spawn(2, 0, name);
    fr_spawn(3, 0, "nowhere @0x1 and @0xZZ and @0x");
    /* inside write, past its start: function+0xoff (libc has no line info) */
    snprintf(name, sizeof(name), "inside @0x%lx", (unsigned long)((uintptr_t)w + 4));
    fr_spawn(4, 0, name);
    /* this program's ELF header: mapped, in no function */
    snprintf(name, sizeof(name), "header @0x%lx", (unsigned long)(exe_base() + 0x10));
    fr_spawn(5, 0, name);
    /* a stripped library: .dynsym only, no line information */
    int (*cb)(int) = symlib_exported_cb;
    snprintf(name, sizeof(name), "stripped @0x%lx", (unsigned long)(uintptr_t)cb);
    fr_spawn(6, 0, name);
    snprintf(name, sizeof(name), "stripped inside @0x%lx", (unsigned long)((uintptr_t)cb + 2));
    fr_spawn(7, 0, name);
    for (uint64_t t = 1; t <= 7; t++) {
        fr_poll_begin(t);
        if (t == 1)
            symbols_start_reading(t);
        fr_poll_end(t, FR_PENDING);
    }
    sc_dump(path);
    fr_shutdown();
}

/* The name the dynamic symbol table gives write's address, as dladdr reads it. */
static const char *libc_name_of_write(void)
{
    Dl_info info;
    ssize_t (*w)(int, const void *, size_t) = write;
    cr_assert(dladdr((void *)(uintptr_t)w, &info) && info.dli_fname);
    return info.dli_fname;
}

Test(symbols, names_and_labels_read_as_symbols_in_text_and_json)
{
    char path[512], args[700], *out, *err;
    record(path);
    char site[128];
    snprintf(site, sizeof(site), "uv_read_start symbols_start_reading (test_symbols.c:%d)",
             call_line);

    snprintf(args, sizeof(args), "tasks '%s'", path);
    cr_assert_eq(sc_cli(args, &out, &err), 0, "%s", err);
    cr_assert_not_null(strstr(out, "timer sym_refresh_cb"), "%s", out);
    cr_assert_null(strstr(out, "timer @0x"), "%s", out);
    /* libc has no .symtab on Debian: the name comes from .dynsym */
    cr_assert_not_null(strstr(out, "writer "), "%s", out);
    cr_assert_null(strstr(out, "writer @0x"), "%s", out);

    snprintf(args, sizeof(args), "tasks '%s' --json", path);
    cr_assert_eq(sc_cli(args, &out, &err), 0, "%s", err);
    /* write, __write or __libc_write (aliases at one address); under ASan,
     * its interceptor __interceptor_write */
    const char *wr = strstr(out, "\"writer ");
    cr_assert_not_null(wr, "%s", out);
    size_t wl = strcspn(wr + 8, "\"");
    cr_assert(wl > 0 && memmem(wr + 8, wl, "write", 5) && !memmem(wr + 8, wl, "+0x", 3),
              "write's address names a write function (in %s): %s", libc_name_of_write(), out);
    const char *in = strstr(out, "\"inside ");
    cr_assert_not_null(in, "%s", out);
    size_t il = strcspn(in + 8, "\"");
    cr_assert(memmem(in + 8, il, "write", 5) &&
                  ((il > 4 && memcmp(in + 8 + il - 4, "+0x4", 4) == 0) ||
                   memmem(in + 8, il, ":", 1)),
              "4 bytes into write: function+0x4 (or a line where there is debug info): %.*s",
              (int)il + 8, in);
    cr_assert_not_null(strstr(out, "\"header test_decoder_symbols+0x10\""), "%s", out);
    cr_assert_not_null(strstr(out, "\"stripped symlib_exported_cb\""), "%s", out);
    cr_assert_not_null(strstr(out, "\"stripped inside symlib_exported_cb+0x2\""), "%s", out);
    cr_assert_not_null(strstr(out, "\"timer sym_refresh_cb\""), "%s", out);
    cr_assert_not_null(strstr(out, "\"nowhere @0x1 and @0xZZ and @0x\""), "%s", out);

    snprintf(args, sizeof(args), "timeline '%s' --task 1", path);
    cr_assert_eq(sc_cli(args, &out, &err), 0, "%s", err);
    cr_assert_not_null(strstr(out, site), "want %s in: %s", site, out);

    snprintf(args, sizeof(args), "export '%s' --format json", path);
    cr_assert_eq(sc_cli(args, &out, &err), 0, "%s", err);
    cr_assert_not_null(strstr(out, site), "want %s in: %s", site, out);
    cr_assert_not_null(strstr(out, "timer sym_refresh_cb"), "%s", out);

    snprintf(args, sizeof(args), "export '%s' --format chrome", path);
    cr_assert_eq(sc_cli(args, &out, &err), 0, "%s", err);
    cr_assert_not_null(strstr(out, "timer sym_refresh_cb"), "%s", out);

    snprintf(args, sizeof(args), "export '%s' --format csv", path);
    cr_assert_eq(sc_cli(args, &out, &err), 0, "%s", err);
    cr_assert_not_null(strstr(out, site), "want %s in: %s", site, out);

    snprintf(args, sizeof(args), "report '%s' -o -", path);
    cr_assert_eq(sc_cli(args, &out, &err), 0, "%s", err);
    cr_assert_not_null(strstr(out, "timer sym_refresh_cb"), "the HTML report names it");
    cr_assert_null(strstr(out, "timer @0x"), "the HTML report names it");

    /* a hung finding says where the task waits: the call site */
    snprintf(args, sizeof(args), "analyze '%s' --json --hang-ms 0", path);
    cr_assert_eq(sc_cli(args, &out, &err), 0, "%s", err);
    cr_assert_not_null(strstr(out, "\"name\": \"timer sym_refresh_cb\""), "%s", out);
    cr_assert_not_null(strstr(out, site), "want %s in: %s", site, out);
    cr_assert_null(strstr(out, "timer @0x"), "%s", out);

    /* --raw-addresses: as recorded */
    snprintf(args, sizeof(args), "tasks '%s' --raw-addresses", path);
    cr_assert_eq(sc_cli(args, &out, &err), 0, "%s", err);
    char raw[64];
    snprintf(raw, sizeof(raw), "timer @0x%lx", (unsigned long)(uintptr_t)&sym_refresh_cb);
    cr_assert_not_null(strstr(out, raw), "%s", out);
    cr_assert_null(strstr(out, "sym_refresh_cb"), "%s", out);
}

/* Every string full of tokens: many distinct addresses in and out of the
 * mappings. The decode must finish (the suite's timeout bounds it) with
 * every command, without a sanitizer report, and resolve what it can. */
Test(symbols, strings_full_of_tokens_stay_safe, .timeout = 120)
{
    char path[512], args[700], *out, *err;
    sc_recorder_start(0);
    uintptr_t base = (uintptr_t)&sym_refresh_cb;
    for (uint64_t t = 1; t <= 2000; t++) {
        char name[256];
        size_t n = 0;
        while (n + 24 < sizeof(name)) {
            /* in this program's text, in nothing, and a wild 64-bit value */
            uintptr_t a = (t + n) % 3 == 0   ? base + (t * 7 + n) % 4096
                          : (t + n) % 3 == 1 ? (uintptr_t)(t * 1000003u + n)
                                             : (uintptr_t)0xffffffffffffff00ull - n;
            n += (size_t)snprintf(name + n, sizeof(name) - n, "@0x%lx", (unsigned long)a);
        }
        fr_spawn(t, 0, name);
    }
    sc_dump(path);
    fr_shutdown();
    const char *cmds[] = {"tasks '%s'", "tasks '%s' --json", "analyze '%s' --json",
                          "export '%s' --format csv", "export '%s' --format chrome",
                          "report '%s' -o -", "info '%s'"};
    for (size_t i = 0; i < sizeof(cmds) / sizeof(*cmds); i++) {
        snprintf(args, sizeof(args), cmds[i], path);
        cr_assert_eq(sc_cli(args, &out, &err), 0, "%s: %s", args, err);
        cr_assert_null(strstr(err, "runtime error"), "%s: %s", args, err);
        free(out);
        free(err);
    }
    snprintf(args, sizeof(args), "tasks '%s' --json", path);
    cr_assert_eq(sc_cli(args, &out, &err), 0, "%s", err);
    cr_assert_not_null(strstr(out, "sym_refresh_cb"), "some tokens resolve");
    cr_assert_not_null(strstr(out, "@0xffffffffffffff"), "tokens in no mapping stay");
}
