#ifndef MJQ_ADMIN_H
#define MJQ_ADMIN_H

#include <stddef.h>

#include <event2/event.h>

/*
 * The supervisor's admin HTTP endpoint (libevent evhttp, on the
 * supervisor's own event loop): GET /healthz, /readyz and /metrics. Any
 * other method on those paths is 405, any other path 404. What each
 * answer says comes from the callbacks; this module only speaks HTTP.
 */

struct admin;

/*
 * A probe: returns 0 when healthy (or ready), or -1 with a one-line
 * reason written into reason (len bytes, NUL-terminated). Runs from the
 * event loop.
 */
typedef int admin_probe_fn(void *ctx, char *reason, size_t len);

/* The /metrics text: a new malloc'd string (freed here) and its length. */
typedef char *admin_text_fn(void *ctx, size_t *len);

struct admin_handlers {
    admin_probe_fn *health; /* /healthz: 200 "ok", else 503 reason */
    admin_probe_fn *ready;  /* /readyz: 200 "ok", else 503 reason */
    admin_text_fn *metrics; /* /metrics: 200, Prometheus text 0.0.4 */
    void *ctx;
};

/*
 * Listens on host:port (a name or a numeric address; "[::1]" brackets
 * already stripped) and serves on base. h is copied. Returns the server,
 * or NULL with a reason in err (errlen bytes) naming what failed, e.g.
 * "bind: Address already in use".
 */
struct admin *admin_start(struct event_base *base, const char *host, int port,
                          const struct admin_handlers *h, char *err,
                          size_t errlen);

/* The port actually bound (useful with port 0). */
int admin_port(const struct admin *a);

/* Closes the socket and every connection. NULL-safe. */
void admin_free(struct admin *a);

#endif
