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

#endif /* FRD_SYMBOLIZE_H */
