#ifndef MJQ_SIM_JSON_H
#define MJQ_SIM_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * A growable byte buffer and a streaming JSON writer on top of it. The
 * simulator's hot replies (fetch, list, submit) are written with this
 * instead of building jansson trees: one pass, no allocation once the
 * buffer has grown. Strings are expected to be valid UTF-8 (they come
 * from jansson-parsed requests or from our own literals); only '"', '\\'
 * and control characters are escaped.
 */

struct sim_buf {
    char *data; /* owned, NUL-terminated; NULL until the first write */
    size_t len; /* bytes used, excluding the NUL */
    size_t cap; /* bytes allocated */
};

/* Makes b empty without allocating (data may stay NULL until a write). */
void sim_buf_init(struct sim_buf *b);
/* Frees the memory; the buffer is empty and reusable afterwards. */
void sim_buf_release(struct sim_buf *b);
/* Empties the buffer, keeping its memory. */
void sim_buf_reset(struct sim_buf *b);
/*
 * Appenders: n bytes at p, a C string, one byte, printf output. They grow
 * the buffer as needed (aborting on out of memory, like xmalloc) and keep
 * it NUL-terminated.
 */
void sim_buf_add(struct sim_buf *b, const void *p, size_t n);
void sim_buf_adds(struct sim_buf *b, const char *s);
void sim_buf_addc(struct sim_buf *b, char c);
void sim_buf_printf(struct sim_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Returns the contents as a new NUL-terminated string; b is left empty. */
char *sim_buf_detach(struct sim_buf *b);

#define SIM_JSON_MAX_DEPTH 16

/* Writer state: where commas go. Containers nest at most 16 deep. */
struct sim_json {
    struct sim_buf *buf; /* borrowed */
    int depth;           /* open containers */
    bool after_key;      /* a key was just written */
    bool need_comma[SIM_JSON_MAX_DEPTH + 1];
};

/* Starts writing one JSON value at the end of buf (borrowed). */
void sim_json_begin(struct sim_json *w, struct sim_buf *buf);
/* Containers: open and close objects and arrays. */
void sim_json_obj_open(struct sim_json *w);
void sim_json_obj_close(struct sim_json *w);
void sim_json_arr_open(struct sim_json *w);
void sim_json_arr_close(struct sim_json *w);
/*
 * Object member name; the next call writes its value. The name is written
 * as is: it must be a literal that needs no escaping.
 */
void sim_json_key(struct sim_json *w, const char *key);
/* String value; NULL writes null. */
void sim_json_str(struct sim_json *w, const char *s);
void sim_json_strn(struct sim_json *w, const char *s, size_t n);
/*
 * String value written without escaping: only for strings we generate
 * ourselves (ids, URLs, customIds, enum names), never for client input.
 */
void sim_json_str_safe(struct sim_json *w, const char *s);
/* String value made of prefix followed by s, without a copy. */
void sim_json_str_prefixed(struct sim_json *w, const char *prefix,
                           const char *s);
/* Scalar values. */
void sim_json_int(struct sim_json *w, int64_t v);
void sim_json_bool(struct sim_json *w, bool v);
void sim_json_null(struct sim_json *w);

/* Appends s escaped as the inside of a JSON string (no quotes). */
void sim_json_escape(struct sim_buf *b, const char *s, size_t n);

#endif
