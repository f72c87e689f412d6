#ifndef MJQ_SIM_ADMIN_H
#define MJQ_SIM_ADMIN_H

#include <stddef.h>
#include <stdint.h>

#include "sim_account.h"
#include "sim_reply.h"
#include "sim_stats.h"
#include "sim_task.h"

/*
 * The simulator's test-control endpoints, without HTTP: GET /sim/stats,
 * POST /sim/reset, GET /sim/accounts, POST /sim/accounts/NAME. They need
 * no key. Like sim_api, each function writes its answer into *r (whose
 * body the caller has emptied) and keeps no request memory.
 */

struct sim_admin {
    struct sim_table *tasks;       /* borrowed */
    struct sim_stats *stats;       /* borrowed */
    struct sim_accounts *accounts; /* borrowed */
};

/* GET /sim/stats: the counters, each account's under "accounts". */
void sim_admin_stats(const struct sim_admin *ad, int64_t now_ms,
                     struct sim_resp *r);

/*
 * POST /sim/reset: zeroes the counters (sim_accounts_reset() for the
 * accounts, which keep their flags). Drops every task too when `query`
 * (the URI part after '?', or NULL) has tasks=1|true or the body (len
 * bytes) is a JSON object with "tasks": true.
 */
void sim_admin_reset(const struct sim_admin *ad, const char *query,
                     const char *body, size_t len, int64_t now_ms,
                     struct sim_resp *r);

/* GET /sim/accounts: the limits, then every account with its flags. */
void sim_admin_accounts(const struct sim_admin *ad, int64_t now_ms,
                        struct sim_resp *r);

/*
 * POST /sim/accounts/NAME (name: the name_len bytes at name) with a body
 * {"revoked":B,"quota":B,"down":B}, every field optional; the flags stay
 * until changed. 404 for an unknown account, 400 for any other field or
 * a value that is not a boolean (nothing changes then); else 200 with the
 * account's object and its "name".
 */
void sim_admin_account(const struct sim_admin *ad, const char *name,
                       size_t name_len, const char *body, size_t len,
                       int64_t now_ms, struct sim_resp *r);

#endif
