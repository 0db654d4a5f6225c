/*
 * decoder/json.c - JSON string escaping and safe text output (see json.h).
 */
#include "json.h"

#include <string.h>

/* Length of the valid UTF-8 sequence at @s (at most @n bytes), 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    unsigned cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    /* overlong forms, surrogates and values past U+10FFFF */
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

void frd_json_chars(FILE *out, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        unsigned char c = p[i];
        if (c == '"' || c == '\\') {
            putc('\\', out);
            putc(c, out);
            i++;
        } else if (c < 0x20 || c == 0x7f) {
            switch (c) {
            case '\n': fputs("\\n", out); break;
            case '\t': fputs("\\t", out); break;
            case '\r': fputs("\\r", out); break;
            default: fprintf(out, "\\u%04x", c); break;
            }
            i++;
        } else {
            size_t n = utf8_len(p + i, len - i);
            if (n == 0) {
                fputs("\\ufffd", out);
                i++;
            } else {
                fwrite(p + i, 1, n, out);
                i += n;
            }
        }
    }
}

void frd_json_str(FILE *out, const char *s, size_t len)
{
    if (!s) {
        fputs("null", out);
        return;
    }
    putc('"', out);
    frd_json_chars(out, s, len);
    putc('"', out);
}

void frd_json_cstr(FILE *out, const char *s)
{
    frd_json_str(out, s, s ? strlen(s) : 0);
}

void frd_json_args(FILE *out, const struct frd_blob *b)
{
    size_t pos = 0, len;
    const char *arg;
    putc('[', out);
    for (int first = 1; (arg = frd_blob_next_arg(b, &pos, &len)); first = 0) {
        if (!first)
            fputs(", ", out);
        frd_json_str(out, arg, len);
    }
    putc(']', out);
}

void frd_json_strid(FILE *out, const struct frd_dump *d, uint32_t id)
{
    size_t n = 0;
    const char *s = frd_string(d, id, &n);
    frd_json_str(out, s, n);
}

void frd_text_str(FILE *out, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        size_t n = p[i] < 0x20 || p[i] == 0x7f ? 0 : utf8_len(p + i, len - i);
        if (n == 0) {
            putc('?', out);
            i++;
        } else {
            fwrite(p + i, 1, n, out);
            i += n;
        }
    }
}
