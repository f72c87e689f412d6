#ifndef MJQ_STORE_H
#define MJQ_STORE_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "config.h"

/*
 * Everything mjq keeps in Redis, and the only module that knows key names
 * and commands (docs/architecture.md lists the keys). One command
 * connection (pipelined: every command is written without waiting for
 * the previous reply) plus one connection per queue for blocking takes,
 * so a BLMOVE never stalls other commands. Connections reconnect by
 * themselves with capped, jittered backoff.
 *
 * Callbacks run from the event loop. rc is 0 on success, -1 when the
 * outcome is unknown because the connection was lost (the command may or
 * may not have run), -2 when Redis answered with an error.
 */

struct store;

struct store_item {
    char *payload; /* owned by the receiver of the callback */
    size_t len;
    int queue; /* index into cfg->queues */
};

enum store_claim_kind {
    CLAIM_NEW,    /* first time this id is seen: ours now */
    CLAIM_MINE,   /* our own record (a claim whose reply was lost) */
    CLAIM_RESUME, /* released or orphaned: ours now, resume it */
    CLAIM_DONE,   /* finished inside the dedup window */
    CLAIM_BUSY,   /* owned by a live worker */
    CLAIM_FULL,   /* ours, but not submitted yet and no candidate
                   * account has room: hand it back to wait */
};

/* An account that may take a job, as a claim offers it (best first). */
struct store_candidate {
    const char *account; /* name */
    int limit;           /* jobs in flight on it, all modes; 0: none */
    int mode_limit;      /* jobs in flight on it in the job's mode; 0 */
};

/* What store_claim needs; strings borrowed for the call. */
struct store_claim_req {
    const char *id;
    const char *queue;       /* where it was taken from */
    const char *action;      /* its action, for the record */
    const char *mode;        /* "default", "fast", ... (lease key) */
    const char *parent_task; /* action/modal: body.taskId, or NULL */
    const struct store_candidate *cands;
    size_t ncands;
};

struct store_claim_info {
    enum store_claim_kind kind;
    int cancelled;       /* mjq:cancel:<id> exists */
    char task_id[64];    /* recorded upstream task id, "" if none */
    int64_t taken_ms;    /* first take, epoch ms */
    long submits, polls; /* spent so far by earlier owners */
    long recoveries;     /* times taken over from a dead worker */
    char owner[128];     /* previous owner ("" if released) */
    char account[40];    /* account of the job: chosen now, or recorded */
    char leases[300];    /* lease keys it holds, "|"-separated */
};

/* A finished job, as the result stream entry (docs/contract.md §2). Every
 * string is borrowed for the call; NULL or "" leaves the field out. */
struct store_result {
    const char *id;
    const char *status;
    const char *action;
    const char *task_id;
    const char *image_url;
    const char *fail_reason;
    const char *task;    /* JSON text */
    const char *buttons; /* JSON text */
    const char *meta;    /* JSON text */
    int64_t started_ms, finished_ms;
    long submits, polls;
    const char *reply_to;
    const char *payload; /* removed from the processing list */
    size_t payload_len;
    int mark_done;      /* 1: the job record becomes "done" (dedup) */
    int dead;           /* 1: payload also goes to the dead stream */
    const char *leases; /* lease keys to release, "|"-separated, or NULL */
};

/* One field of a result entry; value is not NUL-terminated necessarily. */
struct store_field {
    const char *name;
    const char *value;
    size_t len;
    char num[24]; /* storage for formatted numbers */
};

/* Most fields a result entry can have. */
#define STORE_RESULT_FIELDS 14

/*
 * Lays out the result entry of r, in order: id, status, action, then
 * task_id, image_url, fail_reason, task, buttons, meta when set and
 * non-empty, then worker, started_ms, finished_ms, submits, polls.
 * Values are borrowed from r and worker (numbers are formatted into the
 * field's own storage). Returns the number of fields, or 0 if max is
 * below STORE_RESULT_FIELDS. Pure: no I/O.
 */
size_t store_result_fields(const struct store_result *r, const char *worker,
                           struct store_field *f, size_t max);

typedef void store_notify_fn(void *ctx);
typedef void store_take_fn(int rc, struct store_item *items, size_t n,
                           void *ctx);
typedef void store_claim_fn(int rc, const struct store_claim_info *info,
                            void *ctx);
typedef void store_done_fn(int rc, void *ctx);
typedef void store_flag_fn(int rc, int set, void *ctx);

/*
 * Creates the store for worker_id (copied) and starts connecting. on_up
 * runs each time the command connection is ready (after every reconnect),
 * on_down each time it is lost. takes: 1 opens the blocking-take
 * connections (workers), 0 only the command connection (supervisor).
 * Borrows cfg and base.
 */
struct store *store_new(struct event_base *base, const struct config *cfg,
                        const char *worker_id, int takes,
                        store_notify_fn *on_up, store_notify_fn *on_down,
                        void *ctx);

/*
 * Closes every connection at once; pending callbacks run with rc -1.
 * NULL-safe. Not from inside a store callback.
 */
void store_free(struct store *s);

/*
 * cb runs when a heartbeat finds that our previous heartbeat had expired:
 * a supervisor's sweep may have handed our jobs to other workers. The
 * worker then checks each job with store_taken_over().
 */
void store_on_lapse(struct store *s, store_notify_fn *cb);

/* Reads job id's record: set = it is owned by another worker or done. */
int store_taken_over(struct store *s, const char *id, store_flag_fn *cb,
                     void *ctx);

/* 1 when the command connection is ready. */
int store_is_up(const struct store *s);

/*
 * Moves up to max payloads from the queues, in strict priority order,
 * into this worker's processing list, atomically, in one round trip, at
 * most each queue's cap from it (store_set_cap). Returns 0, or -1 if the
 * store is down (cb not called).
 */
int store_take(struct store *s, unsigned max, store_take_fn *cb, void *ctx);

/*
 * Caps the payloads one take moves from queue (index in cfg->queues): 0
 * pauses the queue (no take, no blocking move), UINT_MAX (the default)
 * lifts the cap.
 */
void store_set_cap(struct store *s, size_t queue, unsigned cap);

/* The cap of queue (UINT_MAX: none). */
unsigned store_cap(const struct store *s, size_t queue);

/*
 * Arms a blocking move (BLMOVE, bounded) on every queue that has none and
 * is not paused, so an idle worker sleeps in Redis instead of polling. cb
 * runs with one item each time a job arrives on a queue; that queue is
 * then disarmed.
 */
void store_wait(struct store *s, store_take_fn *cb, void *ctx);

/* Wakes every armed blocking move (CLIENT UNBLOCK); they end with no item,
 * or with the item that raced in, which cb then receives. */
void store_wait_cancel(struct store *s);

/*
 * 1 when a take's reply may have been lost (the connection dropped while a
 * take or a blocking move was pending): payloads may sit in the processing
 * list that the worker does not know about. store_list_held() then tells
 * what the list holds; store_reconciled() clears the flag.
 */
int store_needs_reconcile(const struct store *s);
void store_reconciled(struct store *s);

/* 1 while any blocking move is armed. */
int store_waiting(const struct store *s);

/* Reads the whole processing list (items have queue -1). */
int store_list_held(struct store *s, store_take_fn *cb, void *ctx);

/*
 * Claims job req->id (see enum store_claim_kind), reading the cancel flag
 * and, for a job still to be submitted, taking a lease on the candidate
 * account with the most room, all in one atomic step (the claim script in
 * store.c). Returns 0, or -1 if the store is down.
 */
int store_claim(struct store *s, const struct store_claim_req *req,
                store_claim_fn *cb, void *ctx);

/* Records the accepted upstream task id and the submits spent, and emits
 * the "submitted" event; with account non-NULL also remembers that the
 * account runs the task (<p>task:<task_id>, task_owner_ttl_s), so that
 * follow-ups go there. cb may be NULL. */
int store_submitted(struct store *s, const char *id, const char *task_id,
                    long submits, const char *account, store_done_fn *cb,
                    void *ctx);

/* Reads mjq:cancel:<id>. */
int store_cancel_requested(struct store *s, const char *id, store_flag_fn *cb,
                           void *ctx);

/*
 * Appends an event: type, then nfields name/value pairs in fields
 * (fields[2*i] name, fields[2*i+1] value), plus ts, worker and, when id is
 * non-NULL, id. Fire and forget: events are for monitoring.
 */
void store_event(struct store *s, const char *type, const char *id,
                 const char *const *fields, size_t nfields);

/*
 * Publishes a result and retires the job in one atomic script: LREM from
 * the processing list, and only if the payload was there: XADD to the
 * result stream, the job record marked done with the dedup TTL (if
 * mark_done), its leases released, the payload to the dead stream (if
 * dead), and the "finished" event. cb gets 0 when published, 1 when the
 * payload was no longer in the processing list (nothing written: a resent
 * finish that had run, or a job the sweep handed on), 2 when r->reply_to
 * names a key that holds something else than a stream (nothing written:
 * send it again without reply_to), or -1/-2.
 */
int store_finish(struct store *s, const struct store_result *r,
                 store_done_fn *cb, void *ctx);

/*
 * After a finish or hand-back whose reply was lost: tells whether the
 * payload is still in this worker's processing list (set = 1: the
 * transaction did not run and must be sent again).
 */
int store_still_held(struct store *s, const char *payload, size_t len,
                     store_flag_fn *cb, void *ctx);

/* A job given back; strings borrowed for the call. */
struct store_handback_req {
    const char *id;
    int claimed;         /* the record is ours: release it */
    const char *task_id; /* "" if never accepted upstream */
    const char *payload;
    size_t len;
    int queue;
    long submits, polls;
    const char *leases; /* held leases, "|"-separated, or NULL */
};

/*
 * Gives a job back for any worker to resume, in one atomic script: if the
 * payload is still in the processing list, moves it to the end of its
 * queue that is taken next, and releases the job record when it is still
 * ours (owner "", task_id, polls and submits saved), with its leases when
 * it was never submitted (a task running upstream keeps its lease for
 * whoever resumes it). cb gets 0, 1 when the payload was not there
 * (nothing done), or -1/-2.
 */
int store_handback(struct store *s, const struct store_handback_req *req,
                   store_done_fn *cb, void *ctx);

/* Refreshes this worker's heartbeat key (TTL heartbeat_ttl_ms) with a
 * short JSON description of the worker, and keeps the worker in the
 * registry (<prefix>workers) that the sweep walks. */
void store_heartbeat(struct store *s, const char *info);

/*
 * Recovery: returns the jobs of every registered worker whose heartbeat
 * has expired to their queues (see the sweep script in store.c), if this
 * caller wins the deployment-wide sweep lock for the next
 * sweep_interval_ms. cb gets 0 after a sweep, 1 when another supervisor
 * holds the lock, or -1/-2. Run by supervisors.
 */
int store_sweep(struct store *s, store_done_fn *cb, void *ctx);

/*
 * Describes every configured account in the hash <prefix>accounts (name
 * -> JSON: modes, max_in_flight, limits, batch_fetch,
 * min_poll_interval_ms; never a key or a URL) for `mjq status`. Fire and
 * forget.
 */
void store_publish_accounts(struct store *s);

/* Removes the heartbeat; called after a clean drain. */
void store_retire(struct store *s, store_done_fn *cb, void *ctx);

/*
 * Adds counts[i] results of status names[i] to the per-minute statistics
 * of `mjq status`: HINCRBY <prefix>stats:finished:<minute> per non-zero
 * count, then EXPIRE 7200. Fire and forget (a count lost with the
 * connection is lost: statistics, not bookkeeping). Returns 0, or -1 if
 * the store is down (nothing sent: keep the counts for later).
 */
int store_stats_finished(struct store *s, long long minute,
                         const char *const *names,
                         const unsigned long long *counts, size_t n);

/*
 * Reply to store_sample_queues(): taken[i] and depth[i] of queue i (n
 * queues), read in one MULTI/EXEC so that each pair is consistent: taken
 * is the queue's taken counter (0 when absent), depth its LLEN. Borrowed
 * for the call; NULL unless rc is 0.
 */
typedef void store_sample_fn(int rc, const long long *taken,
                             const long long *depth, size_t n, void *ctx);

/* Samples the n queues named (1..16). Returns 0, or -1 if the store is
 * down (cb not called). */
int store_sample_queues(struct store *s, char *const *queues, size_t n,
                        store_sample_fn *cb, void *ctx);

/* Commands sent so far (for benchmarks). */
unsigned long long store_commands(const struct store *s);

#endif
