#include "sim_json.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xmalloc.h"

void sim_buf_init(struct sim_buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void sim_buf_release(struct sim_buf *b)
{
    free(b->data);
    sim_buf_init(b);
}

void sim_buf_reset(struct sim_buf *b)
{
    b->len = 0;
    if (b->data != NULL)
        b->data[0] = '\0';
}

/* Ensures room for n more bytes plus the NUL. */
static void reserve(struct sim_buf *b, size_t n)
{
    size_t need = b->len + n + 1;
    size_t cap;

    if (need <= b->cap)
        return;
    cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    b->data = xrealloc(b->data, cap);
    b->cap = cap;
}

void sim_buf_add(struct sim_buf *b, const void *p, size_t n)
{
    reserve(b, n);
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void sim_buf_adds(struct sim_buf *b, const char *s)
{
    sim_buf_add(b, s, strlen(s));
}

void sim_buf_addc(struct sim_buf *b, char c)
{
    reserve(b, 1);
    b->data[b->len++] = c;
    b->data[b->len] = '\0';
}

void sim_buf_printf(struct sim_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    reserve(b, 64);
    va_start(ap, fmt);
    n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= b->cap - b->len) {
        reserve(b, (size_t)n);
        va_start(ap, fmt);
        vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
}

char *sim_buf_detach(struct sim_buf *b)
{
    char *s;

    if (b->data == NULL)
        return xstrdup("");
    s = b->data;
    sim_buf_init(b);
    return s;
}

void sim_json_begin(struct sim_json *w, struct sim_buf *buf)
{
    memset(w, 0, sizeof(*w));
    w->buf = buf;
}

/* Comma bookkeeping before any value or key. */
static void before(struct sim_json *w)
{
    if (w->after_key) {
        w->after_key = false;
        return;
    }
    if (w->need_comma[w->depth])
        sim_buf_addc(w->buf, ',');
    w->need_comma[w->depth] = true;
}

static void open_container(struct sim_json *w, char c)
{
    before(w);
    sim_buf_addc(w->buf, c);
    if (w->depth < SIM_JSON_MAX_DEPTH)
        w->depth++;
    w->need_comma[w->depth] = false;
}

static void close_container(struct sim_json *w, char c)
{
    sim_buf_addc(w->buf, c);
    if (w->depth > 0)
        w->depth--;
}

void sim_json_obj_open(struct sim_json *w)
{
    open_container(w, '{');
}

void sim_json_obj_close(struct sim_json *w)
{
    close_container(w, '}');
}

void sim_json_arr_open(struct sim_json *w)
{
    open_container(w, '[');
}

void sim_json_arr_close(struct sim_json *w)
{
    close_container(w, ']');
}

void sim_json_escape(struct sim_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t run = 0;

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[6];
        size_t elen = 2;

        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        sim_buf_add(b, s + run, i - run);
        run = i + 1;
        esc[0] = '\\';
        switch (c) {
        case '"':
        case '\\':
            esc[1] = (char)c;
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            elen = 6;
            break;
        }
        sim_buf_add(b, esc, elen);
    }
    sim_buf_add(b, s + run, n - run);
}

void sim_json_key(struct sim_json *w, const char *key)
{
    size_t n = strlen(key);
    char *p;

    before(w);
    reserve(w->buf, n + 3);
    p = w->buf->data + w->buf->len;
    p[0] = '"';
    memcpy(p + 1, key, n);
    p[n + 1] = '"';
    p[n + 2] = ':';
    w->buf->len += n + 3;
    w->buf->data[w->buf->len] = '\0';
    w->after_key = true;
}

void sim_json_strn(struct sim_json *w, const char *s, size_t n)
{
    before(w);
    sim_buf_addc(w->buf, '"');
    sim_json_escape(w->buf, s, n);
    sim_buf_addc(w->buf, '"');
}

void sim_json_str_safe(struct sim_json *w, const char *s)
{
    size_t n = strlen(s);
    char *p;

    before(w);
    reserve(w->buf, n + 2);
    p = w->buf->data + w->buf->len;
    p[0] = '"';
    memcpy(p + 1, s, n);
    p[n + 1] = '"';
    w->buf->len += n + 2;
    w->buf->data[w->buf->len] = '\0';
}

void sim_json_str_prefixed(struct sim_json *w, const char *prefix,
                           const char *s)
{
    before(w);
    sim_buf_addc(w->buf, '"');
    sim_json_escape(w->buf, prefix, strlen(prefix));
    sim_json_escape(w->buf, s, strlen(s));
    sim_buf_addc(w->buf, '"');
}

void sim_json_str(struct sim_json *w, const char *s)
{
    if (s == NULL) {
        sim_json_null(w);
        return;
    }
    sim_json_strn(w, s, strlen(s));
}

void sim_json_int(struct sim_json *w, int64_t v)
{
    char tmp[24];
    size_t n = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;

    before(w);
    do {
        tmp[sizeof(tmp) - 1 - n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0)
        tmp[sizeof(tmp) - 1 - n++] = '-';
    sim_buf_add(w->buf, tmp + sizeof(tmp) - n, n);
}

void sim_json_bool(struct sim_json *w, bool v)
{
    before(w);
    if (v)
        sim_buf_add(w->buf, "true", 4);
    else
        sim_buf_add(w->buf, "false", 5);
}

void sim_json_null(struct sim_json *w)
{
    before(w);
    sim_buf_add(w->buf, "null", 4);
}
