#include "sim_task.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xmalloc.h"

#define TABLE_MIN_BUCKETS 1024

struct sim_table {
    struct sim_task **buckets;  /* nbuckets chains */
    size_t nbuckets;            /* power of two */
    size_t count;               /* tasks held */
    size_t max_tasks;           /* bound; oldest evicted beyond it */
    struct sim_task *oldest;    /* insertion-order list head */
    struct sim_task *newest;    /* ...and tail */
    uint64_t last_id;           /* last id handed out */
    sim_table_drop_fn *on_drop; /* or NULL */
    void *drop_ctx;             /* borrowed */
};

const char *sim_action_name(enum sim_action a)
{
    static const char *const names[] = {
        "IMAGINE",   "BLEND",  "DESCRIBE", "SHORTEN", "UPSCALE",
        "VARIATION", "REROLL", "ZOOM",     "INPAINT",
    };

    if ((size_t)a >= sizeof(names) / sizeof(names[0]))
        return "IMAGINE";
    return names[a];
}

const char *sim_status_name(enum sim_status s)
{
    static const char *const names[] = {
        "NOT_START", "SUBMITTED", "IN_PROGRESS", "SUCCESS",
        "FAILURE",   "MODAL",     "CANCEL",
    };

    if ((size_t)s >= sizeof(names) / sizeof(names[0]))
        return "FAILURE";
    return names[s];
}

bool sim_status_terminal(enum sim_status s)
{
    return s == SIM_STATUS_SUCCESS || s == SIM_STATUS_FAILURE ||
           s == SIM_STATUS_CANCEL;
}

/* ASCII case-insensitive substring test; `word` is lower case. */
static bool has_word(const char *s, const char *word)
{
    size_t n = strlen(word);

    for (; *s != '\0'; s++) {
        size_t i = 0;

        while (i < n && s[i] != '\0' &&
               (s[i] | 0x20) == word[i] /* letters only in `word` */)
            i++;
        if (i == n)
            return true;
    }
    return false;
}

enum sim_outcome sim_outcome_of(const char *prompt)
{
    if (prompt == NULL)
        return SIM_OUTCOME_OK;
    if (has_word(prompt, "vanish"))
        return SIM_OUTCOME_VANISH;
    if (has_word(prompt, "banned"))
        return SIM_OUTCOME_BANNED;
    if (has_word(prompt, "forever"))
        return SIM_OUTCOME_FOREVER;
    if (has_word(prompt, "fail"))
        return SIM_OUTCOME_FAIL;
    return SIM_OUTCOME_OK;
}

struct sim_task *sim_task_new(uint64_t id, enum sim_action action,
                              const char *prompt, const char *state)
{
    struct sim_task *t = xcalloc(1, sizeof(*t));

    t->id = id;
    t->action = (uint8_t)action;
    t->prompt = xstrdup(prompt != NULL ? prompt : "");
    t->state = (state != NULL && *state != '\0') ? xstrdup(state) : NULL;
    return t;
}

void sim_task_free(struct sim_task *t)
{
    if (t == NULL)
        return;
    free(t->prompt);
    free(t->state);
    free(t);
}

void sim_task_set_prompt(struct sim_task *t, const char *prompt)
{
    char *copy = xstrdup(prompt);

    free(t->prompt);
    t->prompt = copy;
}

/* The timeline without the cancel overlay. */
static void snap_plain(const struct sim_task *t, const struct sim_timing *tm,
                       int64_t now_ms, struct sim_snap *out)
{
    int64_t dur = tm->duration_ms;
    int64_t q = tm->queue_ms < dur ? tm->queue_ms : dur;
    int64_t el = now_ms - t->submit_ms;
    int steps = tm->steps > 0 ? tm->steps : 1;
    int64_t span = dur - q;
    int64_t k;

    memset(out, 0, sizeof(*out));
    if (t->modal) {
        out->status = SIM_STATUS_MODAL;
        return;
    }
    if (el < 0)
        el = 0;
    if (el < q) {
        out->status = el < q / 2 ? SIM_STATUS_NOT_START : SIM_STATUS_SUBMITTED;
        return;
    }
    if (t->outcome == SIM_OUTCOME_BANNED) {
        /* Rejected by the proxy's word check before reaching Discord. */
        out->status = SIM_STATUS_FAILURE;
        out->fail = SIM_FAIL_BANNED;
        out->finish_ms = t->submit_ms + q;
        return;
    }
    out->start_ms = t->submit_ms + q;
    if (t->outcome == SIM_OUTCOME_FOREVER || el < dur) {
        if (span <= 0)
            span = 1;
        k = (el - q) * steps / span;
        if (k > steps - 1)
            k = steps - 1;
        out->status = SIM_STATUS_IN_PROGRESS;
        out->progress = (int)(k * 100 / steps);
        return;
    }
    out->finish_ms = t->submit_ms + dur;
    if (t->outcome == SIM_OUTCOME_FAIL) {
        out->status = SIM_STATUS_FAILURE;
        out->fail = SIM_FAIL_INVALID;
        out->progress = (steps - 1) * 100 / steps;
        return;
    }
    out->status = SIM_STATUS_SUCCESS;
    out->progress = 100;
}

void sim_task_snap(const struct sim_task *t, const struct sim_timing *tm,
                   int64_t now_ms, struct sim_snap *out)
{
    if (t->cancel_ms != 0 && now_ms >= t->cancel_ms) {
        /* Whatever it showed at the cancel, then CANCEL from there on.
         * The cancel handler only sets cancel_ms on unfinished tasks. */
        snap_plain(t, tm, t->cancel_ms, out);
        if (!sim_status_terminal(out->status)) {
            out->status = SIM_STATUS_CANCEL;
            out->fail = SIM_FAIL_CANCEL;
            out->finish_ms = t->cancel_ms;
            return;
        }
    }
    snap_plain(t, tm, now_ms, out);
}

int64_t sim_task_busy_until(const struct sim_task *t,
                            const struct sim_timing *tm)
{
    int64_t dur = tm->duration_ms;
    int64_t q = tm->queue_ms < dur ? tm->queue_ms : dur;

    /* Mirrors snap_plain(): keep the two in step. */
    if (t->modal || t->outcome == SIM_OUTCOME_VANISH)
        return 0;
    if (t->outcome == SIM_OUTCOME_BANNED)
        return t->submit_ms + q;
    if (t->outcome == SIM_OUTCOME_FOREVER)
        return INT64_MAX;
    return t->submit_ms + dur;
}

void sim_id_format(uint64_t id, char *buf, size_t size)
{
    char tmp[24];
    size_t n = 0;

    do {
        tmp[n++] = (char)('0' + id % 10);
        id /= 10;
    } while (id != 0);
    if (size == 0)
        return;
    if (n > size - 1)
        n = size - 1;
    for (size_t i = 0; i < n; i++)
        buf[i] = tmp[n - 1 - i];
    buf[n] = '\0';
}

int sim_id_parse(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;

    if (len == 0 || len > 19 || (s[0] == '0'))
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return 0;
}

/* splitmix64 finaliser: ids are sequential, buckets must not be. */
static size_t bucket_of(const struct sim_table *tab, uint64_t id)
{
    uint64_t z = id + UINT64_C(0x9e3779b97f4a7c15);

    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    z ^= z >> 31;
    return (size_t)(z & (tab->nbuckets - 1));
}

struct sim_table *sim_table_new(size_t max_tasks)
{
    struct sim_table *tab = xcalloc(1, sizeof(*tab));

    tab->nbuckets = TABLE_MIN_BUCKETS;
    tab->buckets = xcalloc(tab->nbuckets, sizeof(*tab->buckets));
    tab->max_tasks = max_tasks > 0 ? max_tasks : 1;
    return tab;
}

void sim_table_set_drop_hook(struct sim_table *tab, sim_table_drop_fn *fn,
                             void *ctx)
{
    tab->on_drop = fn;
    tab->drop_ctx = ctx;
}

static void drop(struct sim_table *tab, struct sim_task *t)
{
    if (tab->on_drop != NULL)
        tab->on_drop(t, tab->drop_ctx);
    sim_task_free(t);
}

void sim_table_free(struct sim_table *tab)
{
    if (tab == NULL)
        return;
    sim_table_clear(tab);
    free(tab->buckets);
    free(tab);
}

uint64_t sim_table_next_id(struct sim_table *tab, int64_t now_ms)
{
    uint64_t id = (uint64_t)(now_ms > 0 ? now_ms : 0) * 1000;

    if (id <= tab->last_id)
        id = tab->last_id + 1;
    tab->last_id = id;
    return id;
}

static void grow(struct sim_table *tab)
{
    size_t old_n = tab->nbuckets;
    struct sim_task **old = tab->buckets;

    tab->nbuckets = old_n * 2;
    tab->buckets = xcalloc(tab->nbuckets, sizeof(*tab->buckets));
    for (size_t i = 0; i < old_n; i++) {
        struct sim_task *t = old[i];

        while (t != NULL) {
            struct sim_task *next = t->hnext;
            size_t b = bucket_of(tab, t->id);

            t->hnext = tab->buckets[b];
            tab->buckets[b] = t;
            t = next;
        }
    }
    free(old);
}

static void unlink_hash(struct sim_table *tab, struct sim_task *t)
{
    struct sim_task **pp = &tab->buckets[bucket_of(tab, t->id)];

    while (*pp != NULL && *pp != t)
        pp = &(*pp)->hnext;
    if (*pp == t)
        *pp = t->hnext;
}

static void evict_oldest(struct sim_table *tab)
{
    struct sim_task *t = tab->oldest;

    tab->oldest = t->fnext;
    if (tab->oldest == NULL)
        tab->newest = NULL;
    unlink_hash(tab, t);
    tab->count--;
    drop(tab, t);
}

void sim_table_add(struct sim_table *tab, struct sim_task *t)
{
    size_t b;

    if (tab->count >= tab->nbuckets)
        grow(tab);
    b = bucket_of(tab, t->id);
    t->hnext = tab->buckets[b];
    tab->buckets[b] = t;
    t->fnext = NULL;
    if (tab->newest != NULL)
        tab->newest->fnext = t;
    else
        tab->oldest = t;
    tab->newest = t;
    tab->count++;
    while (tab->count > tab->max_tasks && tab->oldest != t)
        evict_oldest(tab);
}

struct sim_task *sim_table_find(const struct sim_table *tab, uint64_t id)
{
    struct sim_task *t = tab->buckets[bucket_of(tab, id)];

    while (t != NULL && t->id != id)
        t = t->hnext;
    return t;
}

size_t sim_table_count(const struct sim_table *tab)
{
    return tab->count;
}

size_t sim_table_clear(struct sim_table *tab)
{
    size_t n = tab->count;
    struct sim_task *t = tab->oldest;

    while (t != NULL) {
        struct sim_task *next = t->fnext;

        drop(tab, t);
        t = next;
    }
    memset(tab->buckets, 0, tab->nbuckets * sizeof(*tab->buckets));
    tab->oldest = tab->newest = NULL;
    tab->count = 0;
    return n;
}
