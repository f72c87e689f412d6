#ifndef MJQ_SIM_API_H
#define MJQ_SIM_API_H

#include <stddef.h>
#include <stdint.h>

#include "sim_account.h"
#include "sim_fault.h"
#include "sim_opts.h"
#include "sim_reply.h"
#include "sim_stats.h"
#include "sim_task.h"

/*
 * The MJ API's behaviour, without HTTP: what a submit, fetch, batch fetch
 * or cancel does to the task table and the counters, and what it answers.
 * sim_server.c maps requests onto these calls; unit tests call them
 * directly. Every function runs to completion, writes its answer into *r
 * (whose body the caller has emptied) and never keeps request memory.
 *
 * `acct` (borrowed) is the account the request authenticated as: it owns
 * the tasks it creates, and a task of another account looks exactly like
 * an unknown id. Auth, revoked and down accounts are the server's part.
 */

struct sim_api {
    const struct sim_opts *opts; /* borrowed */
    struct sim_table *tasks;     /* borrowed */
    struct sim_stats *stats;     /* borrowed */
    struct sim_rng *rng;         /* borrowed */
    struct sim_timing timing;    /* from opts */
    uint32_t list_epoch;         /* dedup marker for list calls */
};

/*
 * POST /mj/submit/<ep>. `body` is the raw request body (len bytes, not
 * necessarily NUL-terminated). `fault` is SIM_FAULT_QUEUE_FULL when that
 * fault was drawn for this request (applied after validation, as the real
 * servers check the queue last), else SIM_FAULT_NONE. Counts the submit
 * as accepted or rejected. An account out of quota is refused before
 * anything else; the concurrency limits are checked after validation,
 * for submits that start a task running (not those that create a MODAL
 * task).
 */
void sim_api_submit(struct sim_api *api, struct sim_account *acct,
                    enum sim_endpoint ep, enum sim_mode mode, const char *body,
                    size_t len, enum sim_fault fault, int64_t now_ms,
                    struct sim_resp *r);

/* GET /mj/task/<id>/fetch; id is the raw path segment. */
void sim_api_fetch(struct sim_api *api, struct sim_account *acct,
                   const char *id, size_t id_len, int64_t now_ms,
                   struct sim_resp *r);

/*
 * POST /mj/task/list-by-condition with {"ids":[...]}: the caller's tasks
 * among them, each once, in reverse order of the request.
 */
void sim_api_list(struct sim_api *api, struct sim_account *acct,
                  const char *body, size_t len, int64_t now_ms,
                  struct sim_resp *r);

/* POST /mj/task/<id>/cancel. */
void sim_api_cancel(struct sim_api *api, struct sim_account *acct,
                    const char *id, size_t id_len, int64_t now_ms,
                    struct sim_resp *r);

#endif
