#ifndef MJQ_JOB_H
#define MJQ_JOB_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "config.h"

/*
 * A job as the wire contract defines it (docs/contract.md section 1):
 * parsing and validation of a producer's payload. Pure functions, no I/O.
 */

enum job_action {
    ACTION_IMAGINE,
    ACTION_BLEND,
    ACTION_DESCRIBE,
    ACTION_SHORTEN,
    ACTION_ACTION,
    ACTION_MODAL,
    ACTION_COUNT,
};

#define JOB_ID_MAX 128

struct job_spec {
    char id[JOB_ID_MAX + 1];
    enum job_action action;
    json_t *body;    /* owned reference: the submit body object */
    enum mode mode;  /* MODE_DEFAULT when absent */
    long timeout_ms; /* 0 when absent: use the configured default */
    json_t *meta;    /* owned reference, or NULL when absent */
    char *reply_to;  /* owned, or NULL when absent */
    /* The body's and meta's own text inside the payload (borrowed: valid
     * while the payload is), so they travel byte for byte. */
    const char *body_text;
    size_t body_len;
    const char *meta_text; /* NULL when absent */
    size_t meta_len;
    int body_plain;       /* body has no "state"/"notifyHook": spliceable */
    char parent_task[64]; /* action, modal: body.taskId, "" if none */
    /* The producer's enqueue time, unix ms; 0 when absent or unusable.
     * Only for the queue wait metric. */
    int64_t enqueued_ms;
};

/* Why a payload is INVALID, for the result's fail_reason and mjq:dead. */
struct job_error {
    char field[32];                /* "id", "body", "(payload)", ... */
    char reason[224];              /* human-readable */
    char id[JOB_ID_MAX + 1];       /* the id if one could be read, else "" */
    char action[16];               /* the action if readable, else "" */
    char reply_to[JOB_ID_MAX + 1]; /* a valid reply_to if readable */
};

/* Returns the wire name ("imagine"...) of an action. */
const char *job_action_name(enum job_action action);
/* Parses a wire name. Returns 0, or -1 if unknown. */
int job_action_parse(const char *name, enum job_action *out);
/* Returns "fast", "relax", "turbo" or "" for MODE_DEFAULT. */
const char *job_mode_name(enum mode mode);

/* Returns 1 if s is a valid job id (1-128 of A-Z a-z 0-9 . _ : -). */
int job_id_valid(const char *s, size_t len);

/*
 * Parses and validates one payload of len bytes (not NUL-terminated
 * necessarily). Payloads over max_bytes are rejected without parsing
 * (their id, action and reply_to are still salvaged by a scan). The
 * body_text and meta_text spans point into payload, which the caller
 * keeps alive as long as it uses them.
 * Returns 0 with out filled (the caller owns it: job_spec_clear), or -1
 * with err filled (field, reason, and the id/action if they were
 * readable) and out left empty.
 */
int job_parse(const char *payload, size_t len, long max_bytes,
              struct job_spec *out, struct job_error *err);

/* Releases what a job_spec owns. NULL-safe and idempotent. */
void job_spec_clear(struct job_spec *spec);

/*
 * Builds the request body to POST upstream: the job's body with "state"
 * set to the job id and "notifyHook" set when notify_hook is non-NULL.
 * When the body has neither key, its own text is used with the two
 * members spliced in at the front (nothing else rewritten); otherwise it
 * is re-serialised from spec->body.
 * Returns a new malloc'd NUL-terminated string (caller frees) and its
 * length in *len. Leaves spec->body unchanged.
 */
char *job_submit_body(const struct job_spec *spec, const char *notify_hook,
                      size_t *len);

#endif
