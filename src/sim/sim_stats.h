#ifndef MJQ_SIM_STATS_H
#define MJQ_SIM_STATS_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "sim_opts.h"

/*
 * Counters served at GET /sim/stats. Tests read them to prove what the
 * upstream saw, e.g. exactly one accepted submit per job (accepted_by_state
 * counts accepted submits per `state`, which workers set to the job id).
 */

/* Submit endpoints, as keys of by_action. */
enum sim_endpoint {
    SIM_EP_IMAGINE,
    SIM_EP_BLEND,
    SIM_EP_DESCRIBE,
    SIM_EP_SHORTEN,
    SIM_EP_ACTION,
    SIM_EP_MODAL,
    SIM_EP_COUNT,
};

enum sim_counter {
    SIM_CTR_SUBMITS,         /* submit requests past auth */
    SIM_CTR_ACCEPTED,        /* submits that created or queued a task */
    SIM_CTR_REJECTED,        /* submits answered with a refusal code */
    SIM_CTR_FETCHES,         /* GET /mj/task/{id}/fetch */
    SIM_CTR_BATCH_FETCHES,   /* list-by-condition / list-by-ids calls */
    SIM_CTR_BATCH_IDS,       /* ids asked for in those calls */
    SIM_CTR_CANCELS,         /* cancel calls */
    SIM_CTR_AUTH_FAILURES,   /* requests refused for a wrong/missing key */
    SIM_CTR_LIMIT_REFUSALS,  /* submits refused by a concurrency limit */
    SIM_CTR_QUOTA_REFUSALS,  /* submits refused: account out of quota */
    SIM_CTR_DOWN_REFUSALS,   /* requests answered 500: account down */
    SIM_CTR_BATCH_NOT_FOUND, /* list calls answered 404 (--no-batch) */
    SIM_CTR_COUNT,
};

struct sim_stats;

const char *sim_endpoint_name(enum sim_endpoint e);

/* New zeroed counters, or NULL if jansson is out of memory. */
struct sim_stats *sim_stats_new(void);
/* NULL is a no-op. */
void sim_stats_free(struct sim_stats *st);
/* Zeroes every counter. */
void sim_stats_reset(struct sim_stats *st);
void sim_stats_add(struct sim_stats *st, enum sim_counter c, uint64_t n);
void sim_stats_fault(struct sim_stats *st, enum sim_fault f);
/*
 * One accepted submit: bumps accepted, by_action, by_mode, and
 * accepted_by_state when state is non-empty (state is copied).
 */
void sim_stats_accept(struct sim_stats *st, enum sim_endpoint e,
                      enum sim_mode m, const char *state);
uint64_t sim_stats_get(const struct sim_stats *st, enum sim_counter c);

/*
 * The /sim/stats document, with `tasks` = live tasks, as a tree the
 * caller may extend (the server adds "accounts"). Returns a new
 * reference, or NULL if jansson fails.
 */
json_t *sim_stats_doc(const struct sim_stats *st, size_t tasks);

/*
 * sim_stats_doc() as a new compact JSON string with sorted keys (free()
 * it), or NULL if jansson fails.
 */
char *sim_stats_json(const struct sim_stats *st, size_t tasks);

#endif
