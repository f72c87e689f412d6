#ifndef MJQ_REPORT_H
#define MJQ_REPORT_H

#include <event2/event.h>

/*
 * A worker's channel to its supervisor: one SOCK_SEQPACKET socket per
 * worker slot, inherited across exec, its number in MJQ_PARENT_FD
 * (monitor.c creates the pair). Two jobs:
 * - the supervisor's death closes its end: EOF (or ECONNRESET) here calls
 *   on_gone, and the worker drains (a worker must not outlive it);
 * - report_send() ships a snapshot of this process's counters (metrics.h)
 *   as one message, without blocking: a snapshot that does not fit the
 *   socket's buffer is dropped (the next one carries the same totals).
 * A worker run alone has no MJQ_PARENT_FD, and no report.
 */

struct report;

typedef void report_gone_fn(void *ctx);

/*
 * Takes the socket named by MJQ_PARENT_FD (and unsets the variable) and
 * watches it on base. Returns NULL when there is none (a worker run
 * alone) or the value is not a descriptor number.
 */
struct report *report_open(struct event_base *base, report_gone_fn *on_gone,
                           void *ctx);

/* Sends a snapshot of the counters now. NULL-safe; never blocks. */
void report_send(struct report *r);

/* Closes the socket. NULL-safe. */
void report_free(struct report *r);

#endif
