#ifndef MJQ_MONITOR_H
#define MJQ_MONITOR_H

#include <stddef.h>

#include <event2/event.h>

#include "config.h"
#include "store.h"

/*
 * The supervisor's view of its workers and queues, served on the admin
 * endpoint (admin.h): /healthz, /readyz and /metrics.
 *
 * - One channel per worker slot: a socketpair(AF_UNIX, SOCK_SEQPACKET)
 *   whose worker end the worker inherits (MJQ_PARENT_FD, report.h). The
 *   worker notices our death by EOF on it, and sends a snapshot of its
 *   counters about every second and when it exits. The last snapshot of
 *   each live worker is kept; when a worker exits its last snapshot is
 *   added to the retired totals, so counters never go backwards across
 *   restarts.
 * - About every second the queues are sampled through the supervisor's
 *   own Redis connection (store_sample_queues: one pipelined MULTI/EXEC)
 *   for their depth and the age of their oldest job (queue_age.h);
 *   /metrics serves the last sample.
 *
 * Everything runs on the supervisor's event loop.
 */

struct monitor;
struct monitor_chan;

/* The supervisor's state, as the probes need it. */
struct monitor_state {
    size_t running;  /* worker processes alive */
    size_t waiting;  /* dead, restart timer armed */
    size_t disabled; /* exited with the fatal-configuration code */
    int draining;    /* SIGTERM seen: no more respawns */
};

typedef void monitor_state_fn(void *ctx, struct monitor_state *out);

/*
 * Creates the monitor. Borrows base, cfg and store (they outlive it);
 * state() is asked for the supervisor's state at each probe and scrape.
 * Starts the 1-second queue sampling.
 */
struct monitor *monitor_new(struct event_base *base, const struct config *cfg,
                            struct store *store, monitor_state_fn *state,
                            void *ctx);

/*
 * Starts the admin endpoint on cfg->admin_host:admin_port when
 * admin.listen is set (0 at once when it is not). Returns 0, or -1 after
 * logging the address and the reason (the supervisor then exits 1).
 */
int monitor_listen(struct monitor *m);

/*
 * Opens the channel of a worker about to be forked: a CLOEXEC socketpair.
 * The child clears CLOEXEC on monitor_chan_child_fd() before exec; the
 * parent calls monitor_chan_forked() after fork. Returns NULL with errno
 * set on failure.
 */
struct monitor_chan *monitor_chan_open(struct monitor *m);
int monitor_chan_child_fd(const struct monitor_chan *c);
void monitor_chan_forked(struct monitor_chan *c);

/*
 * The worker of c has exited (reaped): reads the snapshots still queued,
 * adds the last one to the retired totals and frees c. NULL-safe.
 */
void monitor_chan_close(struct monitor *m, struct monitor_chan *c);

/* Counts a restart of a dead worker (mjq_worker_restarts_total). */
void monitor_restarted(struct monitor *m);

/*
 * After a reload: follows the new list of queues (a queue kept by name
 * keeps its history) and a new admin.listen (closed, moved, or kept on
 * the old address when the new one cannot be bound; logged either way).
 * Account names in the metrics stay those of the start.
 */
void monitor_reconfigure(struct monitor *m);

/* The /metrics text now (also for tests): new string, caller frees. */
char *monitor_metrics(struct monitor *m, size_t *len);

/* Stops the endpoint and frees everything, open channels included. */
void monitor_free(struct monitor *m);

#endif
