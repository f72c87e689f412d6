#include "sim_stats.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "xmalloc.h"

struct sim_stats {
    uint64_t ctr[SIM_CTR_COUNT];
    uint64_t faults[SIM_FAULT_COUNT];
    uint64_t by_action[SIM_EP_COUNT];
    uint64_t by_mode[SIM_MODE_COUNT];
    json_t *by_state; /* object: state -> integer; a jansson hash table */
};

static const char *const counter_names[SIM_CTR_COUNT] = {
    "submits",        "accepted",       "rejected",      "fetches",
    "batch_fetches",  "batch_ids",      "cancels",       "auth_failures",
    "limit_refusals", "quota_refusals", "down_refusals", "batch_not_found",
};

const char *sim_endpoint_name(enum sim_endpoint e)
{
    static const char *const names[SIM_EP_COUNT] = {
        "imagine", "blend", "describe", "shorten", "action", "modal"};

    return (unsigned)e < SIM_EP_COUNT ? names[e] : "?";
}

struct sim_stats *sim_stats_new(void)
{
    struct sim_stats *st = xcalloc(1, sizeof(*st));

    st->by_state = json_object();
    if (st->by_state == NULL) {
        free(st);
        return NULL;
    }
    return st;
}

void sim_stats_free(struct sim_stats *st)
{
    if (st == NULL)
        return;
    json_decref(st->by_state);
    free(st);
}

void sim_stats_reset(struct sim_stats *st)
{
    json_t *by_state = st->by_state;

    json_object_clear(by_state);
    memset(st, 0, sizeof(*st));
    st->by_state = by_state;
}

void sim_stats_add(struct sim_stats *st, enum sim_counter c, uint64_t n)
{
    if ((unsigned)c < SIM_CTR_COUNT)
        st->ctr[c] += n;
}

void sim_stats_fault(struct sim_stats *st, enum sim_fault f)
{
    if (f >= 0 && f < SIM_FAULT_COUNT)
        st->faults[f]++;
}

void sim_stats_accept(struct sim_stats *st, enum sim_endpoint e,
                      enum sim_mode m, const char *state)
{
    st->ctr[SIM_CTR_ACCEPTED]++;
    if ((unsigned)e < SIM_EP_COUNT)
        st->by_action[e]++;
    if ((unsigned)m < SIM_MODE_COUNT)
        st->by_mode[m]++;
    if (state != NULL && *state != '\0') {
        json_t *v = json_object_get(st->by_state, state);

        if (v != NULL)
            json_integer_set(v, json_integer_value(v) + 1);
        else
            json_object_set_new(st->by_state, state, json_integer(1));
    }
}

uint64_t sim_stats_get(const struct sim_stats *st, enum sim_counter c)
{
    return (unsigned)c < SIM_CTR_COUNT ? st->ctr[c] : 0;
}

json_t *sim_stats_doc(const struct sim_stats *st, size_t tasks)
{
    json_t *root = json_object();
    json_t *faults = json_object();
    json_t *by_action = json_object();
    json_t *by_mode = json_object();
    json_t *out = NULL;

    if (root == NULL || faults == NULL || by_action == NULL || by_mode == NULL)
        goto out;
    for (int i = 0; i < SIM_CTR_COUNT; i++)
        json_object_set_new(root, counter_names[i],
                            json_integer((json_int_t)st->ctr[i]));
    for (int i = 0; i < SIM_FAULT_COUNT; i++)
        json_object_set_new(faults, sim_fault_name((enum sim_fault)i),
                            json_integer((json_int_t)st->faults[i]));
    for (int i = 0; i < SIM_EP_COUNT; i++)
        json_object_set_new(by_action, sim_endpoint_name((enum sim_endpoint)i),
                            json_integer((json_int_t)st->by_action[i]));
    for (int i = 0; i < SIM_MODE_COUNT; i++)
        json_object_set_new(by_mode, sim_mode_name((enum sim_mode)i),
                            json_integer((json_int_t)st->by_mode[i]));
    json_object_set(root, "accepted_by_state", st->by_state);
    json_object_set(root, "by_action", by_action);
    json_object_set(root, "by_mode", by_mode);
    json_object_set(root, "faults", faults);
    json_object_set_new(root, "tasks", json_integer((json_int_t)tasks));
    out = json_incref(root);
out:
    json_decref(by_mode);
    json_decref(by_action);
    json_decref(faults);
    json_decref(root);
    return out;
}

char *sim_stats_json(const struct sim_stats *st, size_t tasks)
{
    json_t *doc = sim_stats_doc(st, tasks);
    char *out = NULL;

    if (doc != NULL)
        out = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(doc);
    return out;
}
