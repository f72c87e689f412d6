#ifndef MJQ_UPSTREAM_H
#define MJQ_UPSTREAM_H

#include <jansson.h>
#include <event2/event.h>

#include "config.h"
#include "http.h"
#include "job.h"

/*
 * The MJ API as it really behaves (docs/upstreams.md): request routes,
 * auth, and the classification of every answer shape of the novicezk,
 * trueai and new-api servers into what the worker should do. Only this
 * module knows the MJ wire format.
 */

struct upstream;

enum submit_verdict {
    SUBMIT_ACCEPTED,  /* task_id is set: poll it */
    SUBMIT_MODAL,     /* task_id waits for /mj/submit/modal input */
    SUBMIT_RETRY,     /* transient: try again later */
    SUBMIT_PERMANENT, /* the job fails with reason */
};

struct submit_result {
    enum submit_verdict verdict;
    char task_id[64];    /* ACCEPTED or MODAL */
    char reason[512];    /* RETRY and PERMANENT: clear, secret-free */
    long retry_after_ms; /* server's hint, -1 if none */
    int maybe_accepted;  /* RETRY: the upstream may have created a task */
    int in_queue;        /* code 22: accepted behind others */
};

enum task_verdict {
    TASK_RUNNING, /* NOT_START, SUBMITTED, IN_PROGRESS (or unknown) */
    TASK_SUCCESS,
    TASK_FAILURE,
    TASK_CANCEL,
    TASK_MODAL,     /* waits for modal input */
    TASK_NOT_FOUND, /* empty 200, 204, 404, task_no_found */
    TASK_RETRY,     /* transient trouble, poll again */
    TASK_PERMANENT, /* e.g. the key was rejected */
};

struct task_result {
    enum task_verdict verdict;
    char status[16];   /* upstream status text, "" if none */
    char progress[16]; /* "45%", "" if none */
    char reason[512];  /* failReason, or what went wrong */
    long retry_after_ms;
    char image_url[2048]; /* imageUrl, "" if none */
    const char *raw;      /* the task's JSON text when the reply was that
                           * one object (borrowed for the callback), or
                           * NULL: saves re-serialising it */
    size_t raw_len;
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

/* Callbacks run from the event loop; results are borrowed. */
typedef void upstream_submit_fn(const struct submit_result *r, void *ctx);
typedef void upstream_fetch_fn(struct task_result *r, void *ctx);

/*
 * Creates the client. Borrows cfg (must outlive it). The API key is
 * kept only inside a libcurl header list. Returns NULL on failure.
 */
struct upstream *upstream_new(struct event_base *base,
                              const struct config *cfg);

/* Frees it; requests in flight are dropped without callbacks. NULL-safe. */
void upstream_free(struct upstream *up);

/*
 * POSTs body (stolen, freed when done) to <base><route>/mj/submit/<action>.
 * Returns a request handle for upstream_cancel, or NULL when the request
 * could not be started (cb is then never called).
 */
struct http_request *upstream_submit(struct upstream *up,
                                     enum job_action action, enum mode mode,
                                     char *body, size_t len,
                                     upstream_submit_fn *cb, void *ctx);

/* GETs <base><route>/mj/task/<task_id>/fetch. As upstream_submit. */
struct http_request *upstream_fetch(struct upstream *up, enum mode mode,
                                    const char *task_id, upstream_fetch_fn *cb,
                                    void *ctx);

/* Aborts a request started here; its callback never runs. NULL-safe. */
void upstream_cancel(struct http_request *req);

/* HTTP requests started so far (for benchmarks). */
unsigned long long upstream_requests(const struct upstream *up);

#endif
