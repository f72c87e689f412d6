#ifndef MJQ_JSONSCAN_H
#define MJQ_JSONSCAN_H

#include <stddef.h>

/*
 * Finding a member's text inside JSON without building a tree, so that
 * mjq can pass a value on byte for byte (a job's meta and body, a task's
 * buttons) instead of re-serialising it, which would copy megabytes of
 * base64 and rewrite numbers (0.1 -> 0.10000000000000001).
 *
 * jsonscan_member() finds the value of top-level member `key` in the JSON
 * object text json[0..len) and sets *off and *vlen to its span (strings
 * keep their quotes). Returns 0, or -1 if the member is absent or the text
 * is not an object. It never reads outside json[0..len). On invalid JSON
 * it may return -1 or a meaningless span, so callers either validate the
 * document first (jansson) or validate what they extract (job ids).
 */
int jsonscan_member(const char *json, size_t len, const char *key, size_t *off,
                    size_t *vlen);

/*
 * Returns 0 if json[0..len) is exactly one valid JSON value (RFC 8259:
 * strict grammar, valid UTF-8, no control characters in strings), with
 * optional white space around it; -1 otherwise. Nesting deeper than 256
 * is refused. Allocates nothing: a fetch reply is checked in a few
 * microseconds, where building a jansson tree costs tens.
 */
int jsonscan_valid(const char *json, size_t len);

/*
 * Iterates the elements of the top-level array json[0..len), which must be
 * valid JSON (jsonscan_valid). Start with *pos = 0; each call sets *off and
 * *vlen to the span of the next element and returns 0, then 1 once there
 * are no more; -1 if the text is not an array.
 */
int jsonscan_element(const char *json, size_t len, size_t *pos, size_t *off,
                     size_t *vlen);

/*
 * Decodes the JSON string literal json[0..len) (quotes included) into out
 * as UTF-8, NUL-terminated, truncated to size - 1 bytes. Returns 0, or -1
 * if the span is not a well-formed string literal.
 */
int jsonscan_string(const char *json, size_t len, char *out, size_t size);

#endif
