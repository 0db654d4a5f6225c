/*
 * decoder/json.h - the few JSON writing helpers the renderers share.
 *
 * Strings in a dump are arbitrary bytes; JSON output must be valid UTF-8, so
 * frd_json_str copies valid UTF-8 sequences, escapes control characters, and
 * replaces each byte of an invalid sequence with U+FFFD.
 */
#ifndef FRD_JSON_H
#define FRD_JSON_H

#include <stddef.h>
#include <stdio.h>

#include "reader.h"

/* Write @len bytes at @s as a quoted JSON string. NULL writes null. */
void frd_json_str(FILE *out, const char *s, size_t len);

/* Write @len bytes at @s escaped as the inside of a JSON string, without the
 * quotes, so that one string can be written in pieces. */
void frd_json_chars(FILE *out, const char *s, size_t len);

/* Write a NUL-terminated string as a JSON string (NULL: null). */
void frd_json_cstr(FILE *out, const char *s);

/* Write the NUL-separated arguments in @b as a JSON array of strings. */
void frd_json_args(FILE *out, const struct frd_blob *b);

/* Write string @id of @d as a JSON string, or null if it has no text. */
void frd_json_strid(FILE *out, const struct frd_dump *d, uint32_t id);

/* Write @len bytes as text, replacing control bytes and invalid UTF-8 with
 * '?', for human-readable output. */
void frd_text_str(FILE *out, const char *s, size_t len);

#endif /* FRD_JSON_H */
