#ifndef MJQ_METRICS_H
#define MJQ_METRICS_H

#include <stddef.h>
#include <stdint.h>

/*
 * Counters of a worker process, their wire snapshot, and the Prometheus
 * text a supervisor serves (docs/operations.md, "Metrics and health").
 *
 * The registry is process-wide on purpose: a worker is one thread and one
 * event loop, so a counter is a plain increment with no lock, no atomic
 * and no pointer to thread through every module (upstream.c counts its
 * requests without knowing the worker). Nothing here allocates on the hot
 * path. A worker ships a snapshot of the registry to its supervisor about
 * once a second (report.c); the supervisor merges the snapshots of its
 * workers (monitor.c) and renders them with metrics_render().
 */

enum metrics_status {
    METRICS_SUCCESS,
    METRICS_FAILURE,
    METRICS_CANCEL,
    METRICS_TIMEOUT,
    METRICS_INVALID,
    METRICS_DUPLICATE,
    METRICS_STATUS_COUNT,
};

enum metrics_retry {
    METRICS_RETRY_SUBMIT,
    METRICS_RETRY_POLL,
    METRICS_RETRY_COUNT,
};

enum metrics_endpoint {
    METRICS_EP_SUBMIT,
    METRICS_EP_FETCH,
    METRICS_EP_LIST,
    METRICS_EP_PROBE,
    METRICS_EP_COUNT,
};

enum metrics_outcome {
    METRICS_OUT_OK,        /* accepted, or a task (any status) came back */
    METRICS_OUT_RETRY,     /* transient trouble: tried again later */
    METRICS_OUT_REFUSED,   /* permanent refusal */
    METRICS_OUT_NOT_FOUND, /* the task is not known upstream */
    METRICS_OUT_COUNT,
};

/* What happened to an upstream account (health.h's changes). */
enum metrics_account_change {
    METRICS_ACCOUNT_OPENED,   /* circuit breaker opened */
    METRICS_ACCOUNT_CLOSED,   /* circuit breaker closed */
    METRICS_ACCOUNT_LEFT,     /* left rotation */
    METRICS_ACCOUNT_RETURNED, /* back in rotation */
    METRICS_ACCOUNT_CHANGE_COUNT,
};

/* Upstream accounts a snapshot can carry; more are counted as the last. */
#define METRICS_MAX_ACCOUNTS 16
/* Longest account name kept (longer ones are cut). */
#define METRICS_ACCOUNT_NAME 64
/* Largest encoded snapshot, bytes (fits one SOCK_SEQPACKET message). */
#define METRICS_SNAPSHOT_MAX 8192

/* Status name as in results ("SUCCESS"...), or "" when out of range. */
const char *metrics_status_name(enum metrics_status s);
/* Parses a result status name. Returns 0, or -1 if unknown. */
int metrics_status_parse(const char *name, enum metrics_status *out);

/*
 * Names the upstream accounts, in the order of the account numbers that
 * metrics_upstream() receives (until multi-account support, one account
 * named "default"). Copies the names; at most METRICS_MAX_ACCOUNTS.
 * Worker and supervisor call it with the same configuration, so a number
 * means the same account on both sides.
 */
void metrics_set_accounts(const char *const *names, size_t n);
size_t metrics_naccounts(void);
const char *metrics_account_name(size_t i);

/* Hot-path counters of this process: each is one increment. */
void metrics_job_taken(void);
void metrics_job_finished(enum metrics_status s, int64_t duration_ms);
void metrics_job_handed_back(void);
void metrics_retry(enum metrics_retry kind);
void metrics_recovered(void);
void metrics_redis_reconnected(void);
void metrics_queue_wait(int64_t ms);
void metrics_upstream(int account, enum metrics_endpoint ep,
                      enum metrics_outcome outcome);
/* Gauge: jobs this process holds now (set before each snapshot). */
void metrics_set_in_flight(long n);
/* The account is out of rotation or its breaker is open (1) or not (0),
 * as this worker sees it: a gauge, summed over the running workers. */
void metrics_account_down(int account, int down);
void metrics_account_change(int account, enum metrics_account_change c);
/* Finished jobs of status s counted so far in this process. */
uint64_t metrics_finished(enum metrics_status s);
/* Clears this process's registry (tests). Account names stay. */
void metrics_reset(void);

/*
 * A snapshot: every counter of one process at one moment, or a sum of
 * several. Opaque; allocated with metrics_snapshot_new() (all zero).
 */
struct metrics_snapshot;

struct metrics_snapshot *metrics_snapshot_new(void);
/* NULL-safe. */
void metrics_snapshot_free(struct metrics_snapshot *s);
void metrics_snapshot_clear(struct metrics_snapshot *s);
/* Copies this process's registry into out. */
void metrics_snapshot_take(struct metrics_snapshot *out);

/*
 * Encodes s compactly (magic "MJQm", layout size, then index gap and value
 * of each non-zero counter, as LEB128 varints) into buf. Returns the
 * bytes written, or 0 if cap is too small (METRICS_SNAPSHOT_MAX always
 * suffices).
 */
size_t metrics_snapshot_encode(const struct metrics_snapshot *s,
                               unsigned char *buf, size_t cap);

/*
 * Decodes what metrics_snapshot_encode() wrote. Returns 0 with out
 * replaced, or -EPROTO for a snapshot of another layout (a binary of
 * another version) or -EINVAL for a malformed one; out is then unchanged.
 */
int metrics_snapshot_decode(struct metrics_snapshot *out,
                            const unsigned char *buf, size_t len);

/* dst += src, gauges included: the sum of live workers. */
void metrics_snapshot_add(struct metrics_snapshot *dst,
                          const struct metrics_snapshot *src);

/*
 * dst += src, counters and histograms only: what a worker that exited
 * leaves to the retired totals, so that a counter never goes backwards
 * across a restart while its gauges (jobs in flight) vanish with it.
 */
void metrics_snapshot_retire(struct metrics_snapshot *dst,
                             const struct metrics_snapshot *src);

/* Reading a snapshot (tests, and anyone who needs one figure). */
uint64_t metrics_snapshot_taken(const struct metrics_snapshot *s);
uint64_t metrics_snapshot_finished(const struct metrics_snapshot *s,
                                   enum metrics_status st);
uint64_t metrics_snapshot_upstream(const struct metrics_snapshot *s,
                                   int account, enum metrics_endpoint ep,
                                   enum metrics_outcome outcome);
long metrics_snapshot_in_flight(const struct metrics_snapshot *s);

/* One configured queue as the supervisor last sampled it. */
struct metrics_queue {
    const char *name;
    int sampled;         /* 0: no sample yet, the queue's lines are left out */
    long long depth;     /* LLEN */
    double oldest_age_s; /* estimated age of the oldest waiting job */
};

/* What a supervisor knows besides its workers' snapshots. */
struct metrics_view {
    const char *version;
    long workers; /* worker processes running */
    unsigned long long restarts;
    int draining;
    int redis_up;
    const struct metrics_queue *queues;
    size_t nqueues;
    const struct metrics_snapshot *jobs; /* retired + live workers */
};

/*
 * Renders v in the Prometheus text exposition format 0.0.4: every family
 * with # HELP and # TYPE, label values escaped. Returns a new
 * NUL-terminated string (caller frees) and its length in *len.
 */
char *metrics_render(const struct metrics_view *v, size_t *len);

#endif
