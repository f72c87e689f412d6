#ifndef MJQ_UPSTREAM_H
#define MJQ_UPSTREAM_H

#include <jansson.h>
#include <event2/event.h>

#include "config.h"
#include "health.h"
#include "http.h"
#include "job.h"

/*
 * The MJ API as it really behaves (docs/upstreams.md): one or more
 * accounts (cfg->accounts), their routes and keys, the classification of
 * every answer shape of the novicezk, trueai and new-api servers into what
 * the worker should do, batch polling with list-by-condition, and the
 * health of each account (circuit breaker, rotation, probes). Only this
 * module knows the MJ wire format.
 */

struct upstream;
struct upstream_call; /* one submit or poll on its way; see upstream_cancel */

enum submit_verdict {
    SUBMIT_ACCEPTED,  /* task_id is set: poll it */
    SUBMIT_MODAL,     /* task_id waits for /mj/submit/modal input */
    SUBMIT_RETRY,     /* transient: try again later */
    SUBMIT_REROUTE,   /* this account cannot take jobs now (key refused,
                       * out of quota): another account may */
    SUBMIT_PERMANENT, /* the job fails with reason */
};

struct submit_result {
    enum submit_verdict verdict;
    char task_id[64];          /* ACCEPTED or MODAL */
    char reason[512];          /* RETRY, REROUTE, PERMANENT: secret-free */
    long retry_after_ms;       /* server's hint, -1 if none */
    int maybe_accepted;        /* RETRY: the upstream may have created a
                                * task */
    int in_queue;              /* code 22: accepted behind others */
    int limited;               /* RETRY because of a limit, a full queue or
                                * a 429: not a failure of the job */
    enum health_signal signal; /* what it says about the account */
};

enum task_verdict {
    TASK_RUNNING, /* NOT_START, SUBMITTED, IN_PROGRESS (or unknown) */
    TASK_SUCCESS,
    TASK_FAILURE,
    TASK_CANCEL,
    TASK_MODAL,     /* waits for modal input */
    TASK_NOT_FOUND, /* empty 200, 204, 404, task_no_found, or absent from
                     * a list-by-condition answer */
    TASK_RETRY,     /* transient trouble, poll again */
    TASK_PERMANENT, /* an answer that will not change */
};

struct task_result {
    enum task_verdict verdict;
    char status[16];   /* upstream status text, "" if none */
    char progress[16]; /* "45%", "" if none */
    char reason[512];  /* failReason, or what went wrong */
    long retry_after_ms;
    char image_url[2048]; /* imageUrl, "" if none */
    const char *raw;      /* the task's JSON text (borrowed for the
                           * callback), or NULL: saves re-serialising it */
    size_t raw_len;
    enum health_signal signal; /* what it says about the account */
};

/*
 * Classifies a submit answer. action matters for code 3 (missing parent
 * vs no account). Pure: no I/O. Never fails.
 */
void upstream_classify_submit(const struct http_response *resp,
                              enum job_action action,
                              struct submit_result *out);

/*
 * Classifies a fetch answer for task_id. Pure: no I/O. out->raw points
 * into resp's body (borrowed: valid while resp is).
 */
void upstream_classify_fetch(const struct http_response *resp,
                             const char *task_id, struct task_result *out);

/*
 * Classifies one parsed task object (e.g. from list-by-condition).
 * Borrows task; fills everything but out->raw.
 */
void upstream_classify_task(json_t *task, struct task_result *out);

/*
 * Classifies a list-by-condition answer for the ids[0..n) asked: calls
 * each(i, result, ctx) once per id, with TASK_NOT_FOUND for ids the
 * answer left out. Returns 0, or -1 without calling each when the server
 * has no such endpoint (HTTP 404/405), so the caller fetches one by one.
 * Any other failure gives every id the same TASK_RETRY. Pure: no I/O;
 * result->raw points into resp's body.
 */
typedef void upstream_each_fn(size_t i, struct task_result *r, void *ctx);
int upstream_classify_list(const struct http_response *resp,
                           const char *const *ids, size_t n,
                           upstream_each_fn *each, void *ctx);

/* Callbacks run from the event loop; results are borrowed. */
typedef void upstream_submit_fn(const struct submit_result *r, void *ctx);
typedef void upstream_fetch_fn(struct task_result *r, void *ctx);
/* An account changed state (health.h): for logs, events and metrics. */
typedef void upstream_health_fn(int account, enum health_change change,
                                const struct health *h, void *ctx);

/*
 * Creates the client for cfg->accounts. Borrows cfg (must outlive it) and
 * base. on_health (may be NULL) hears every account's state changes. The
 * API keys are kept only inside libcurl header lists. Returns NULL on
 * failure.
 */
struct upstream *upstream_new(struct event_base *base, const struct config *cfg,
                              upstream_health_fn *on_health, void *ctx);

/* Frees it; calls in flight are dropped without callbacks. NULL-safe. */
void upstream_free(struct upstream *up);

/* Index of the account called name, or -1. */
int upstream_find_account(const struct upstream *up, const char *name);

/* The account's name (borrowed from the config). */
const char *upstream_account_name(const struct upstream *up, int account);

/*
 * Accounts that serve mode and take submits now, best first (spread over
 * the accounts in turn), into out[0..max). Returns how many.
 */
size_t upstream_candidates(struct upstream *up, enum mode mode, int *out,
                           size_t max);

/* 1 if the account serves mode. */
int upstream_serves(const struct upstream *up, int account, enum mode mode);

/* 1 if the account takes submits now (its health is OK). */
int upstream_can_submit(const struct upstream *up, int account);

/* The account's health (borrowed). */
const struct health *upstream_health(const struct upstream *up, int account);

/* The shortest delay between two polls of one task on the account. */
long upstream_min_poll_ms(const struct upstream *up, int account);

/*
 * POSTs body (stolen, freed when done) to the account's
 * <base><route>/mj/submit/<action>. Returns a call handle for
 * upstream_cancel, or NULL when the request could not be started (cb is
 * then never called).
 */
struct upstream_call *upstream_submit(struct upstream *up, int account,
                                      enum job_action action, enum mode mode,
                                      char *body, size_t len,
                                      upstream_submit_fn *cb, void *ctx);

/*
 * Polls task_id on the account: with batch_fetch, it joins the account's
 * next list-by-condition request (sent batch_window_ms after the first
 * poll that joins it, or when batch_size are waiting); otherwise one GET
 * <base><route>/mj/task/<task_id>/fetch. As upstream_submit.
 */
struct upstream_call *upstream_poll(struct upstream *up, int account,
                                    enum mode mode, const char *task_id,
                                    upstream_fetch_fn *cb, void *ctx);

/* Aborts a call started here; its callback never runs. NULL-safe. */
void upstream_cancel(struct upstream_call *call);

/* HTTP requests started so far (for benchmarks). */
unsigned long long upstream_requests(const struct upstream *up);

#endif
