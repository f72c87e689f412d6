#ifndef MJQ_SIM_REPLY_H
#define MJQ_SIM_REPLY_H

#include <stdbool.h>
#include <stdint.h>

#include "sim_json.h"
#include "sim_opts.h"
#include "sim_task.h"

/*
 * Wire shapes of the three dialects (mj-api.md §1-4): the task object,
 * the submit envelope, refusals, "not found", auth failures and injected
 * faults. Only this module knows how novicezk, trueai and new-api differ;
 * the server decides *what* to answer, this decides *how it looks*.
 *
 * Each function fills a struct sim_resp whose body buffer the caller owns
 * and has emptied; none of them keeps a pointer past the call.
 */

struct sim_resp {
    int status;           /* HTTP status code */
    const char *ctype;    /* static Content-Type, NULL for an empty body */
    struct sim_buf *body; /* borrowed; appended to */
};

/* Why a submit is refused (HTTP and code vary by dialect). */
enum sim_reject {
    SIM_REJECT_BAD_JSON,        /* body is not a JSON object */
    SIM_REJECT_PROMPT_EMPTY,    /* imagine/shorten without prompt */
    SIM_REJECT_BLEND_COUNT,     /* base64Array not 2..5 strings */
    SIM_REJECT_BASE64_FORMAT,   /* novicezk: not a data: URL */
    SIM_REJECT_DESCRIBE_EMPTY,  /* describe without base64/link */
    SIM_REJECT_TASK_ID_EMPTY,   /* action/modal without taskId */
    SIM_REJECT_CUSTOM_ID_EMPTY, /* action without customId */
    SIM_REJECT_PARENT_MISSING,  /* action parent unknown (code 3) */
    SIM_REJECT_PARENT_STATUS,   /* action parent not SUCCESS */
    SIM_REJECT_UNKNOWN_ACTION,  /* customId not among the buttons */
    SIM_REJECT_MODAL_MISSING,   /* modal target unknown (code 3) */
    SIM_REJECT_NOT_MODAL,       /* modal target not in MODAL */
    SIM_REJECT_BANNED,          /* novicezk: code 24 banned word */
    SIM_REJECT_QUEUE_FULL,      /* injected queue full (23 / 9) */
    SIM_REJECT_LIMIT,           /* account limit: 23 / 9 / new-api 429 */
    SIM_REJECT_QUOTA,           /* account out of quota: quota_not_enough */
};

/* An accepted submit. */
struct sim_accept {
    uint64_t id;              /* result task id */
    int queue_ahead;          /* > 0: code 22 with numberOfQueues */
    bool modal;               /* code 21 Waiting for window confirm */
    bool modal_keeps_21;      /* new-api keeps 21 (CustomZoom, Inpaint) */
    const char *final_prompt; /* properties.finalPrompt for code 21 */
};

/* Writes one task object as fetch/list-by-condition show it. */
void sim_reply_task(struct sim_json *w, enum sim_dialect d,
                    const struct sim_task *t, const struct sim_snap *snap);

/* Submit accepted: code 1, 21 or 22 envelope. */
void sim_reply_accept(struct sim_resp *r, enum sim_dialect d, bool numeric_ids,
                      const struct sim_accept *a);

/*
 * Submit refused. `prompt` is echoed for SIM_REJECT_BANNED; `result` is
 * the dead task id novicezk puts in a queue-full reply (0 = none).
 */
void sim_reply_reject(struct sim_resp *r, enum sim_dialect d, bool numeric_ids,
                      enum sim_reject why, const char *prompt, uint64_t result);

/* Fetch or cancel of an unknown task. */
void sim_reply_not_found(struct sim_resp *r, enum sim_dialect d);

/* Missing or wrong key. */
void sim_reply_auth(struct sim_resp *r, enum sim_dialect d);

/* Bad JSON on a list-by-condition call. */
void sim_reply_bad_json(struct sim_resp *r, enum sim_dialect d);

/*
 * An injected 500, 429, malformed body, or the 503 that ends a slow
 * submit (f == SIM_FAULT_SLOW). html picks the HTML variant of a
 * malformed body over the truncated JSON one.
 */
void sim_reply_fault(struct sim_resp *r, enum sim_dialect d, enum sim_fault f,
                     bool is_submit, bool html);

#endif
