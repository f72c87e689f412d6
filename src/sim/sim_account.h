#ifndef MJQ_SIM_ACCOUNT_H
#define MJQ_SIM_ACCOUNT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "sim_opts.h"
#include "sim_task.h"

/*
 * Upstream accounts: which key is which account, the flags tests flip at
 * run time (revoked, out of quota, down), each account's concurrency
 * limits and what it has in flight, and its counters.
 *
 * Every account owns the tasks it creates (sim_task.account); other
 * accounts never see them, as in new-api where tasks are scoped to the
 * key's user. With no key configured there is one account, "default",
 * and no auth.
 *
 * In flight: a task counts from the submit that starts it running until
 * sim_task_busy_until() (or its cancel, or its eviction). Each account
 * keeps its running tasks in a min-heap on that end time and drops the
 * expired ones whenever it is asked (admit, stats), so checking a limit
 * costs O(log n) per task over its whole life and never a scan.
 */

struct sim_accounts;
struct sim_account;

/* Per-account counters, as named in the JSON. */
enum sim_acct_counter {
    SIM_ACTR_SUBMITS,        /* submit requests that passed auth */
    SIM_ACTR_ACCEPTED,       /* submits that created or started a task */
    SIM_ACTR_FETCHES,        /* fetch requests that passed auth */
    SIM_ACTR_BATCH_FETCHES,  /* list-by-condition calls that passed auth */
    SIM_ACTR_BATCH_IDS,      /* ids asked for in those calls */
    SIM_ACTR_BATCH_404,      /* list calls refused by --no-batch */
    SIM_ACTR_LIMIT_REFUSALS, /* submits refused by a concurrency limit */
    SIM_ACTR_AUTH_REFUSALS,  /* requests refused: the account is revoked */
    SIM_ACTR_QUOTA_REFUSALS, /* submits refused: out of quota */
    SIM_ACTR_DOWN_REFUSALS,  /* requests answered 500: the account is down */
    SIM_ACTR_COUNT,
};

/*
 * The registry for opts (borrowed; read now only): --key as "default",
 * then every --account in order, with the limits. Never NULL.
 */
struct sim_accounts *sim_accounts_new(const struct sim_opts *opts);
/*
 * Frees the registry. Free the task table whose drop hook points here
 * first: its tasks are then out of every heap. NULL is a no-op.
 */
void sim_accounts_free(struct sim_accounts *as);

/* True when some account has a key: requests must then carry one. */
bool sim_accounts_auth(const struct sim_accounts *as);
/* Number of accounts, >= 1. */
size_t sim_accounts_count(const struct sim_accounts *as);
/* Borrowed account number i (0 <= i < count), as stored in tasks. */
struct sim_account *sim_accounts_at(const struct sim_accounts *as, size_t i);
/*
 * The account whose key is the len bytes at key, or NULL. With auth off
 * it is always the default account.
 */
struct sim_account *sim_accounts_by_key(const struct sim_accounts *as,
                                        const char *key, size_t len);
/* The account with this name (len bytes), or NULL. */
struct sim_account *sim_accounts_by_name(const struct sim_accounts *as,
                                         const char *name, size_t len);

/*
 * A sim_table drop hook (ctx = the registry): takes t out of its
 * account's in-flight heap before the table frees it.
 */
void sim_accounts_on_drop(struct sim_task *t, void *ctx);

/*
 * POST /sim/reset: zeroes every account's counters, restarts
 * in_flight_max (and per mode) from what is in flight at now_ms, and
 * forgets read times from before now_ms. Keeps accounts, flags, tasks.
 */
void sim_accounts_reset(struct sim_accounts *as, int64_t now_ms);

/*
 * {"<name>": {...}, ...} for /sim/stats and /sim/accounts, in flight as
 * of now_ms. Returns a new reference, or NULL if jansson fails.
 */
json_t *sim_accounts_json(struct sim_accounts *as, int64_t now_ms);

/*
 * {"auth":bool,"account_limit":N,"mode_limits":{"default":N,...}}: the
 * settings GET /sim/accounts shows next to the accounts. Returns a new
 * reference, or NULL if jansson fails.
 */
json_t *sim_accounts_limits_json(const struct sim_accounts *as);

/* Flags tests set with POST /sim/accounts/NAME; all sticky. */
struct sim_account_flags {
    bool revoked;  /* the key is refused as invalid */
    bool no_quota; /* submits refused with quota_not_enough */
    bool down;     /* every request answers HTTP 500 */
};

/* The account's name (borrowed; lives as long as the registry). */
const char *sim_account_name(const struct sim_account *a);
/* Index of the account in its registry (what sim_task.account holds). */
unsigned sim_account_index(const struct sim_account *a);
/* Borrowed flags; the caller may change them. */
struct sim_account_flags *sim_account_flags(struct sim_account *a);

/* Adds n to counter c; sim_accounts_reset() zeroes them. */
void sim_account_add(struct sim_account *a, enum sim_acct_counter c,
                     uint64_t n);
/* Counter c's value. */
uint64_t sim_account_get(const struct sim_account *a, enum sim_acct_counter c);

/*
 * May one more task start now in mode m? Drops what ended by now_ms, then
 * checks the account limit and the mode's. Returns true when it may.
 */
bool sim_account_may_start(struct sim_account *a, enum sim_mode m,
                           int64_t now_ms);
/*
 * t (owned by the table, t->account == this account) starts running in
 * mode m until until_ms (sim_task_busy_until). Nothing happens when
 * until_ms <= now_ms: the task is already over. Updates in_flight_max.
 */
void sim_account_start(struct sim_account *a, struct sim_task *t,
                       enum sim_mode m, int64_t until_ms, int64_t now_ms);
/* t stops counting (cancel). A no-op when it was not in flight. */
void sim_account_stop(struct sim_account *a, struct sim_task *t);
/* Tasks in flight at now_ms (drops the ended ones first). */
uint64_t sim_account_in_flight(struct sim_account *a, int64_t now_ms);

/*
 * A client read t (fetch, or t is in a list-by-condition answer) at
 * now_ms: records the gap since its previous read in min_read_gap_ms.
 */
void sim_account_read(struct sim_account *a, struct sim_task *t,
                      int64_t now_ms);
/* Smallest gap between two reads of one task, or -1 if none yet. */
int64_t sim_account_min_read_gap(const struct sim_account *a);

/*
 * {"revoked":..,"quota":..,"down":.., counters.., "in_flight":..,
 * "in_flight_max":.., "in_flight_by_mode":{..},
 * "in_flight_max_by_mode":{..}, "min_read_gap_ms":..|null} as of now_ms.
 * Returns a new reference, or NULL if jansson fails.
 */
json_t *sim_account_json(struct sim_account *a, int64_t now_ms);

#endif
