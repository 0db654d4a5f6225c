/*
 * decoder/symbolize.h - offline symbolization of crash instruction pointers.
 *
 * The recorder stores raw addresses (symbolizing in a signal handler would
 * allocate). Offline, each address is mapped through the dump's MODULES
 * section (the process's /proc/self/maps) to a file and an offset, and, when
 * the decoder is built with elfutils libdw and the file is readable here, to a
 * function and a source file:line. Otherwise the module and offset are given.
 */
#ifndef FRD_SYMBOLIZE_H
#define FRD_SYMBOLIZE_H

#include <stddef.h>
#include <stdint.h>

#include "reader.h"

struct frd_frame {
    uint64_t ip;
    char module[256];   /* path from MODULES, "" if the ip is in no mapping */
    uint64_t offset;    /* file offset of ip within module */
    char function[128]; /* "" if unknown */
    char file[256];     /* "" if unknown */
    int line;           /* 0 if unknown */
};

/*
 * frd_symbolize - describe @n addresses @ips into @out. Frames after the first
 * are return addresses, looked up at ip - 1 so that the call, not the next
 * line, is named. Return: 0.
 */
int frd_symbolize(const struct frd_dump *d, const uint64_t *ips, size_t n,
                  struct frd_frame *out);

/*
 * frd_symbol_text - the text that replaces a code-address token: "function"
 * at a function's start, "function (file:line)" with a source line (file's
 * base name), "function+0xoff", "module+0xoff" (module's base name); "" when
 * @f names nothing. @offset: bytes into the function, UINT64_MAX if unknown.
 */
void frd_symbol_text(const struct frd_frame *f, uint64_t offset, char *buf, size_t len);

#define FRD_SYM_NO_FILES 1u /* module+offset only: open no file the dump names */

/*
 * frd_symbolize_strings - replace every "@0x<lowercase hex>" token in @d's
 * strings (format.h "Code addresses in strings") by frd_symbol_text of its
 * address, so every renderer shows names. A token that resolves to nothing,
 * or past the work bounds (distinct addresses, rewritten bytes; see
 * symbolize.c), stays as it was. Call once, after frd_open and before
 * building the model. @flags: FRD_SYM_NO_FILES or 0.
 * Return: 0, or -ENOMEM (the strings are then left as they were).
 */
int frd_symbolize_strings(struct frd_dump *d, unsigned flags);

#endif /* FRD_SYMBOLIZE_H */
