#include "sim_account.h"

#include <stdlib.h>
#include <string.h>

#include "xmalloc.h"

/* One running task in an account's heap, ordered by until_ms. */
struct flight {
    int64_t until_ms;   /* it stops counting at this wall ms */
    struct sim_task *t; /* borrowed from the table; t->flight_pos = slot+1 */
};

struct sim_account {
    char *name; /* owned */
    char *key;  /* owned or NULL (auth off); a secret, never logged */
    unsigned index;
    const struct sim_accounts *owner; /* limits */
    struct sim_account_flags flags;
    uint64_t ctr[SIM_ACTR_COUNT];
    struct flight *heap; /* min-heap on until_ms, `running` entries */
    size_t running;
    size_t heap_cap;
    uint64_t by_mode[SIM_MODE_COUNT]; /* running per mode */
    uint64_t max;                     /* most running at once */
    uint64_t max_by_mode[SIM_MODE_COUNT];
    int64_t min_gap_ms; /* smallest read gap, -1 = none yet */
    int64_t reset_ms;   /* reads at or before it are not a gap's start */
};

struct sim_accounts {
    struct sim_account *acct; /* n accounts */
    size_t n;
    bool auth;                          /* some account has a key */
    int64_t limit;                      /* per account, 0 = none */
    int64_t mode_limit[SIM_MODE_COUNT]; /* per account and mode, 0 = none */
};

static const char *const counter_names[SIM_ACTR_COUNT] = {
    "submits",        "accepted",        "fetches",        "batch_fetches",
    "batch_ids",      "batch_not_found", "limit_refusals", "auth_refusals",
    "quota_refusals", "down_refusals",
};

static void init_account(struct sim_accounts *as, const char *name,
                         const char *key)
{
    struct sim_account *a = &as->acct[as->n];

    memset(a, 0, sizeof(*a));
    a->name = xstrdup(name);
    a->key = key != NULL ? xstrdup(key) : NULL;
    a->index = (unsigned)as->n;
    a->owner = as;
    a->min_gap_ms = -1;
    as->n++;
}

struct sim_accounts *sim_accounts_new(const struct sim_opts *opts)
{
    struct sim_accounts *as = xcalloc(1, sizeof(*as));

    as->acct = xcalloc(opts->naccounts + 1, sizeof(*as->acct));
    if (opts->key != NULL || opts->naccounts == 0)
        init_account(as, "default", opts->key);
    for (size_t i = 0; i < opts->naccounts; i++)
        init_account(as, opts->accounts[i].name, opts->accounts[i].key);
    as->auth = opts->key != NULL || opts->naccounts > 0;
    as->limit = opts->account_limit;
    memcpy(as->mode_limit, opts->mode_limit, sizeof(as->mode_limit));
    return as;
}

void sim_accounts_free(struct sim_accounts *as)
{
    if (as == NULL)
        return;
    for (size_t i = 0; i < as->n; i++) {
        struct sim_account *a = &as->acct[i];

        free(a->heap);
        free(a->name);
        free(a->key);
    }
    free(as->acct);
    free(as);
}

bool sim_accounts_auth(const struct sim_accounts *as)
{
    return as->auth;
}

size_t sim_accounts_count(const struct sim_accounts *as)
{
    return as->n;
}

struct sim_account *sim_accounts_at(const struct sim_accounts *as, size_t i)
{
    return i < as->n ? &as->acct[i] : NULL;
}

/* Compares every byte whatever the first difference (cheap to have). */
static bool secret_eq(const char *given, size_t len, const char *want)
{
    unsigned char diff = 0;

    if (strlen(want) != len)
        return false;
    for (size_t i = 0; i < len; i++)
        diff |= (unsigned char)(given[i] ^ want[i]);
    return diff == 0;
}

/* A scan: there are at most SIM_MAX_ACCOUNTS, usually two or three. */
struct sim_account *sim_accounts_by_key(const struct sim_accounts *as,
                                        const char *key, size_t len)
{
    if (!as->auth)
        return &as->acct[0];
    for (size_t i = 0; i < as->n; i++) {
        if (as->acct[i].key != NULL && secret_eq(key, len, as->acct[i].key))
            return &as->acct[i];
    }
    return NULL;
}

struct sim_account *sim_accounts_by_name(const struct sim_accounts *as,
                                         const char *name, size_t len)
{
    for (size_t i = 0; i < as->n; i++) {
        if (strlen(as->acct[i].name) == len &&
            memcmp(as->acct[i].name, name, len) == 0)
            return &as->acct[i];
    }
    return NULL;
}

const char *sim_account_name(const struct sim_account *a)
{
    return a->name;
}

unsigned sim_account_index(const struct sim_account *a)
{
    return a->index;
}

struct sim_account_flags *sim_account_flags(struct sim_account *a)
{
    return &a->flags;
}

void sim_account_add(struct sim_account *a, enum sim_acct_counter c, uint64_t n)
{
    if ((unsigned)c < SIM_ACTR_COUNT)
        a->ctr[c] += n;
}

uint64_t sim_account_get(const struct sim_account *a, enum sim_acct_counter c)
{
    return (unsigned)c < SIM_ACTR_COUNT ? a->ctr[c] : 0;
}

/* Heap slot i now holds f: store it and tell its task where it is. */
static void heap_put(struct sim_account *a, size_t i, struct flight f)
{
    a->heap[i] = f;
    f.t->flight_pos = (uint32_t)(i + 1);
}

static void sift_up(struct sim_account *a, size_t i, struct flight f)
{
    while (i > 0) {
        size_t parent = (i - 1) / 2;

        if (a->heap[parent].until_ms <= f.until_ms)
            break;
        heap_put(a, i, a->heap[parent]);
        i = parent;
    }
    heap_put(a, i, f);
}

static void sift_down(struct sim_account *a, size_t i, struct flight f)
{
    for (;;) {
        size_t c = 2 * i + 1;

        if (c >= a->running)
            break;
        if (c + 1 < a->running && a->heap[c + 1].until_ms < a->heap[c].until_ms)
            c++;
        if (f.until_ms <= a->heap[c].until_ms)
            break;
        heap_put(a, i, a->heap[c]);
        i = c;
    }
    heap_put(a, i, f);
}

/* Takes heap slot i out and uncounts its task. */
static void heap_remove(struct sim_account *a, size_t i)
{
    struct sim_task *t = a->heap[i].t;
    struct flight last;

    t->flight_pos = 0;
    if (t->mode < SIM_MODE_COUNT && a->by_mode[t->mode] > 0)
        a->by_mode[t->mode]--;
    last = a->heap[--a->running];
    if (i == a->running)
        return;
    /* The moved entry may belong above or below slot i. */
    if (i > 0 && last.until_ms < a->heap[(i - 1) / 2].until_ms)
        sift_up(a, i, last);
    else
        sift_down(a, i, last);
}

/* Drops every task that has ended by now_ms. */
static void expire(struct sim_account *a, int64_t now_ms)
{
    while (a->running > 0 && a->heap[0].until_ms <= now_ms)
        heap_remove(a, 0);
}

bool sim_account_may_start(struct sim_account *a, enum sim_mode m,
                           int64_t now_ms)
{
    const struct sim_accounts *as = a->owner;

    expire(a, now_ms);
    if (as->limit > 0 && a->running >= (uint64_t)as->limit)
        return false;
    if ((unsigned)m < SIM_MODE_COUNT && as->mode_limit[m] > 0 &&
        a->by_mode[m] >= (uint64_t)as->mode_limit[m])
        return false;
    return true;
}

void sim_account_start(struct sim_account *a, struct sim_task *t,
                       enum sim_mode m, int64_t until_ms, int64_t now_ms)
{
    struct flight f;

    expire(a, now_ms);
    if (t->flight_pos != 0)
        heap_remove(a, t->flight_pos - 1); /* restarted: count it once */
    t->mode = (uint8_t)((unsigned)m < SIM_MODE_COUNT ? m : SIM_MODE_DEFAULT);
    if (until_ms <= now_ms)
        return;
    if (a->running == a->heap_cap) {
        a->heap_cap = a->heap_cap ? a->heap_cap * 2 : 64;
        a->heap = xrealloc(a->heap, a->heap_cap * sizeof(*a->heap));
    }
    f.until_ms = until_ms;
    f.t = t;
    a->running++;
    sift_up(a, a->running - 1, f);
    a->by_mode[t->mode]++;
    if (a->running > a->max)
        a->max = a->running;
    if (a->by_mode[t->mode] > a->max_by_mode[t->mode])
        a->max_by_mode[t->mode] = a->by_mode[t->mode];
}

void sim_account_stop(struct sim_account *a, struct sim_task *t)
{
    if (t->flight_pos != 0 && t->flight_pos <= a->running &&
        a->heap[t->flight_pos - 1].t == t)
        heap_remove(a, t->flight_pos - 1);
}

uint64_t sim_account_in_flight(struct sim_account *a, int64_t now_ms)
{
    expire(a, now_ms);
    return a->running;
}

void sim_accounts_on_drop(struct sim_task *t, void *ctx)
{
    struct sim_accounts *as = ctx;

    if (t->flight_pos != 0 && t->account < as->n)
        sim_account_stop(&as->acct[t->account], t);
}

void sim_account_read(struct sim_account *a, struct sim_task *t, int64_t now_ms)
{
    /* A read from before the last reset does not start a gap. */
    if (t->last_read_ms > a->reset_ms && now_ms >= t->last_read_ms) {
        int64_t gap = now_ms - t->last_read_ms;

        if (a->min_gap_ms < 0 || gap < a->min_gap_ms)
            a->min_gap_ms = gap;
    }
    t->last_read_ms = now_ms;
}

int64_t sim_account_min_read_gap(const struct sim_account *a)
{
    return a->min_gap_ms;
}

void sim_accounts_reset(struct sim_accounts *as, int64_t now_ms)
{
    for (size_t i = 0; i < as->n; i++) {
        struct sim_account *a = &as->acct[i];

        expire(a, now_ms);
        memset(a->ctr, 0, sizeof(a->ctr));
        a->max = a->running;
        memcpy(a->max_by_mode, a->by_mode, sizeof(a->max_by_mode));
        a->min_gap_ms = -1;
        a->reset_ms = now_ms;
    }
}

static json_t *modes_json(const uint64_t v[SIM_MODE_COUNT])
{
    json_t *o = json_object();

    for (int m = 0; o != NULL && m < SIM_MODE_COUNT; m++)
        json_object_set_new(o, sim_mode_name((enum sim_mode)m),
                            json_integer((json_int_t)v[m]));
    return o;
}

json_t *sim_account_json(struct sim_account *a, int64_t now_ms)
{
    json_t *o = json_object();

    if (o == NULL)
        return NULL;
    expire(a, now_ms);
    json_object_set_new(o, "revoked", json_boolean(a->flags.revoked));
    json_object_set_new(o, "quota", json_boolean(!a->flags.no_quota));
    json_object_set_new(o, "down", json_boolean(a->flags.down));
    for (int i = 0; i < SIM_ACTR_COUNT; i++)
        json_object_set_new(o, counter_names[i],
                            json_integer((json_int_t)a->ctr[i]));
    json_object_set_new(o, "in_flight", json_integer((json_int_t)a->running));
    json_object_set_new(o, "in_flight_max", json_integer((json_int_t)a->max));
    json_object_set_new(o, "in_flight_by_mode", modes_json(a->by_mode));
    json_object_set_new(o, "in_flight_max_by_mode", modes_json(a->max_by_mode));
    json_object_set_new(o, "min_read_gap_ms",
                        a->min_gap_ms >= 0 ? json_integer(a->min_gap_ms)
                                           : json_null());
    return o;
}

json_t *sim_accounts_json(struct sim_accounts *as, int64_t now_ms)
{
    json_t *o = json_object();

    for (size_t i = 0; o != NULL && i < as->n; i++) {
        json_t *a = sim_account_json(&as->acct[i], now_ms);

        if (a == NULL) {
            json_decref(o);
            return NULL;
        }
        json_object_set_new(o, as->acct[i].name, a);
    }
    return o;
}

json_t *sim_accounts_limits_json(const struct sim_accounts *as)
{
    json_t *o = json_object();
    uint64_t ml[SIM_MODE_COUNT];

    if (o == NULL)
        return NULL;
    for (int m = 0; m < SIM_MODE_COUNT; m++)
        ml[m] = (uint64_t)as->mode_limit[m];
    json_object_set_new(o, "auth", json_boolean(as->auth));
    json_object_set_new(o, "account_limit", json_integer(as->limit));
    json_object_set_new(o, "mode_limits", modes_json(ml));
    return o;
}
