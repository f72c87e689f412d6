#ifndef MJQ_XMALLOC_H
#define MJQ_XMALLOC_H

#include <stddef.h>

/*
 * Allocation that never returns NULL. Out of memory is not a condition a
 * worker can recover from in-process: we log and abort, and the supervisor
 * respawns the worker, whose jobs the sweep then resumes (redis zmalloc).
 */
void *xmalloc(size_t size);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *ptr, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* Copies len bytes and appends a NUL (for binary-safe payloads). */
char *xmemdup(const void *p, size_t len);

#endif
