#include "metrics.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xmalloc.h"

/*
 * Layout: one flat array of 64-bit values, so that merging is a loop and
 * the wire format needs no per-field code. Histograms keep one count per
 * bucket (not cumulative: merging stays an addition) plus an overflow
 * bucket, and their sum in milliseconds, an integer like everything else.
 */

/* Bucket upper bounds, milliseconds. Queue wait: 0.1 s .. 1 h. */
static const uint64_t qwait_bounds[] = {
    100,   500,    1000,   2500,   5000,    10000,   30000,
    60000, 120000, 300000, 600000, 1800000, 3600000,
};
/* Job duration, take to result: 1 s .. 1 h. */
static const uint64_t dur_bounds[] = {
    1000,   5000,   10000,  20000,  30000,   45000,   60000,   90000,
    120000, 180000, 300000, 600000, 1200000, 1800000, 3600000,
};

#define NQWAIT (sizeof(qwait_bounds) / sizeof(qwait_bounds[0]))
#define NDUR   (sizeof(dur_bounds) / sizeof(dur_bounds[0]))

enum {
    V_TAKEN,
    V_FINISHED, /* + status */
    V_HANDED_BACK = V_FINISHED + METRICS_STATUS_COUNT,
    V_RETRIES, /* + kind */
    V_RECOVERIES = V_RETRIES + METRICS_RETRY_COUNT,
    V_RECONNECTS,
    V_IN_FLIGHT, /* the one gauge */
    V_QWAIT,     /* NQWAIT buckets, then +Inf */
    V_QWAIT_SUM = V_QWAIT + NQWAIT + 1,
    V_DUR,
    V_DUR_SUM = V_DUR + NDUR + 1,
    V_UPSTREAM, /* [account][endpoint][outcome] */
    /* Gauges per account: 1 while this worker sees it out of rotation or
     * its breaker open; summed, the workers that see it so. */
    V_ACCOUNT_DOWN = V_UPSTREAM + METRICS_MAX_ACCOUNTS * METRICS_EP_COUNT *
                                      METRICS_OUT_COUNT,
    V_ACCOUNT_CHANGES = V_ACCOUNT_DOWN + METRICS_MAX_ACCOUNTS, /* [a][c] */
    V_COUNT =
        V_ACCOUNT_CHANGES + METRICS_MAX_ACCOUNTS * METRICS_ACCOUNT_CHANGE_COUNT,
};

struct metrics_snapshot {
    uint64_t v[V_COUNT];
};

static struct metrics_snapshot reg;
static char accounts[METRICS_MAX_ACCOUNTS][METRICS_ACCOUNT_NAME];
static size_t naccounts;

static const char *const status_names[METRICS_STATUS_COUNT] = {
    "SUCCESS", "FAILURE", "CANCEL", "TIMEOUT", "INVALID", "DUPLICATE",
};
static const char *const retry_names[METRICS_RETRY_COUNT] = {"submit", "poll"};
static const char *const endpoint_names[METRICS_EP_COUNT] = {"submit", "fetch",
                                                             "list", "probe"};
static const char *const outcome_names[METRICS_OUT_COUNT] = {
    "ok", "retry", "refused", "not_found"};

const char *metrics_status_name(enum metrics_status s)
{
    return (unsigned)s < METRICS_STATUS_COUNT ? status_names[s] : "";
}

int metrics_status_parse(const char *name, enum metrics_status *out)
{
    for (int i = 0; i < METRICS_STATUS_COUNT; i++)
        if (strcmp(name, status_names[i]) == 0) {
            *out = (enum metrics_status)i;
            return 0;
        }
    return -1;
}

void metrics_set_accounts(const char *const *names, size_t n)
{
    if (n > METRICS_MAX_ACCOUNTS)
        n = METRICS_MAX_ACCOUNTS;
    for (size_t i = 0; i < n; i++)
        snprintf(accounts[i], sizeof(accounts[i]), "%s", names[i]);
    naccounts = n;
}

size_t metrics_naccounts(void)
{
    return naccounts;
}

const char *metrics_account_name(size_t i)
{
    return i < naccounts ? accounts[i] : "";
}

void metrics_job_taken(void)
{
    reg.v[V_TAKEN]++;
}

static void observe(uint64_t *v, const uint64_t *bounds, size_t n, int64_t ms)
{
    size_t i = 0;

    if (ms < 0)
        ms = 0;
    while (i < n && (uint64_t)ms > bounds[i])
        i++;
    v[i]++;                   /* i == n: the +Inf bucket */
    v[n + 1] += (uint64_t)ms; /* the sum follows the buckets */
}

void metrics_job_finished(enum metrics_status s, int64_t duration_ms)
{
    if ((unsigned)s >= METRICS_STATUS_COUNT)
        return;
    reg.v[V_FINISHED + s]++;
    observe(&reg.v[V_DUR], dur_bounds, NDUR, duration_ms);
}

void metrics_job_handed_back(void)
{
    reg.v[V_HANDED_BACK]++;
}

void metrics_retry(enum metrics_retry kind)
{
    if ((unsigned)kind < METRICS_RETRY_COUNT)
        reg.v[V_RETRIES + kind]++;
}

void metrics_recovered(void)
{
    reg.v[V_RECOVERIES]++;
}

void metrics_redis_reconnected(void)
{
    reg.v[V_RECONNECTS]++;
}

void metrics_queue_wait(int64_t ms)
{
    observe(&reg.v[V_QWAIT], qwait_bounds, NQWAIT, ms);
}

static size_t upstream_index(int account, enum metrics_endpoint ep,
                             enum metrics_outcome outcome)
{
    if (account < 0)
        account = 0;
    if (account >= METRICS_MAX_ACCOUNTS)
        account = METRICS_MAX_ACCOUNTS - 1;
    return V_UPSTREAM +
           ((size_t)account * METRICS_EP_COUNT + (size_t)ep) *
               METRICS_OUT_COUNT +
           (size_t)outcome;
}

void metrics_upstream(int account, enum metrics_endpoint ep,
                      enum metrics_outcome outcome)
{
    if ((unsigned)ep < METRICS_EP_COUNT &&
        (unsigned)outcome < METRICS_OUT_COUNT)
        reg.v[upstream_index(account, ep, outcome)]++;
}

static size_t account_slot(int account)
{
    if (account < 0)
        return 0;
    return account >= METRICS_MAX_ACCOUNTS ? METRICS_MAX_ACCOUNTS - 1
                                           : (size_t)account;
}

void metrics_account_down(int account, int down)
{
    reg.v[V_ACCOUNT_DOWN + account_slot(account)] = down != 0;
}

void metrics_account_change(int account, enum metrics_account_change c)
{
    if ((unsigned)c < METRICS_ACCOUNT_CHANGE_COUNT)
        reg.v[V_ACCOUNT_CHANGES +
              account_slot(account) * METRICS_ACCOUNT_CHANGE_COUNT + c]++;
}

void metrics_set_in_flight(long n)
{
    reg.v[V_IN_FLIGHT] = n > 0 ? (uint64_t)n : 0;
}

uint64_t metrics_finished(enum metrics_status s)
{
    return (unsigned)s < METRICS_STATUS_COUNT ? reg.v[V_FINISHED + s] : 0;
}

void metrics_reset(void)
{
    memset(&reg, 0, sizeof(reg));
}

struct metrics_snapshot *metrics_snapshot_new(void)
{
    return xcalloc(1, sizeof(struct metrics_snapshot));
}

void metrics_snapshot_free(struct metrics_snapshot *s)
{
    free(s);
}

void metrics_snapshot_clear(struct metrics_snapshot *s)
{
    memset(s, 0, sizeof(*s));
}

void metrics_snapshot_take(struct metrics_snapshot *out)
{
    *out = reg;
}

/* ------------------------------------------------------------------ */
/* Wire format.                                                         */

static const unsigned char magic[4] = {'M', 'J', 'Q', 'm'};

static size_t put_varint(unsigned char *buf, size_t cap, size_t off, uint64_t v)
{
    do {
        if (off >= cap)
            return 0;
        buf[off++] = (unsigned char)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v != 0);
    return off;
}

/* Returns the offset after the varint, or 0 if it is truncated or longer
 * than 64 bits. */
static size_t get_varint(const unsigned char *buf, size_t len, size_t off,
                         uint64_t *out)
{
    uint64_t v = 0;

    for (unsigned shift = 0; shift < 64; shift += 7) {
        unsigned char b;

        if (off >= len)
            return 0;
        b = buf[off++];
        if (shift == 63 && (b & 0x7e) != 0)
            return 0;
        v |= (uint64_t)(b & 0x7f) << shift;
        if ((b & 0x80) == 0) {
            *out = v;
            return off;
        }
    }
    return 0;
}

size_t metrics_snapshot_encode(const struct metrics_snapshot *s,
                               unsigned char *buf, size_t cap)
{
    size_t off = sizeof(magic);
    size_t next = 0; /* first index the next gap counts from */

    if (cap < sizeof(magic))
        return 0;
    memcpy(buf, magic, sizeof(magic));
    off = put_varint(buf, cap, off, V_COUNT);
    for (size_t i = 0; i < V_COUNT && off != 0; i++) {
        if (s->v[i] == 0)
            continue;
        off = put_varint(buf, cap, off, i - next);
        if (off != 0)
            off = put_varint(buf, cap, off, s->v[i]);
        next = i + 1;
    }
    return off;
}

int metrics_snapshot_decode(struct metrics_snapshot *out,
                            const unsigned char *buf, size_t len)
{
    struct metrics_snapshot tmp;
    size_t off = sizeof(magic);
    uint64_t count, gap, value, next = 0;

    if (len < sizeof(magic) || memcmp(buf, magic, sizeof(magic)) != 0)
        return -EINVAL;
    off = get_varint(buf, len, off, &count);
    if (off == 0)
        return -EINVAL;
    if (count != V_COUNT)
        return -EPROTO;
    memset(&tmp, 0, sizeof(tmp));
    while (off < len) {
        off = get_varint(buf, len, off, &gap);
        if (off == 0 || gap >= V_COUNT - next)
            return -EINVAL;
        next += gap;
        off = get_varint(buf, len, off, &value);
        if (off == 0)
            return -EINVAL;
        tmp.v[next++] = value;
    }
    *out = tmp;
    return 0;
}

void metrics_snapshot_add(struct metrics_snapshot *dst,
                          const struct metrics_snapshot *src)
{
    for (size_t i = 0; i < V_COUNT; i++)
        dst->v[i] += src->v[i];
}

void metrics_snapshot_retire(struct metrics_snapshot *dst,
                             const struct metrics_snapshot *src)
{
    /* Gauges describe running workers only. */
    for (size_t i = 0; i < V_COUNT; i++)
        if (i != V_IN_FLIGHT &&
            (i < V_ACCOUNT_DOWN || i >= V_ACCOUNT_DOWN + METRICS_MAX_ACCOUNTS))
            dst->v[i] += src->v[i];
}

uint64_t metrics_snapshot_taken(const struct metrics_snapshot *s)
{
    return s->v[V_TAKEN];
}

uint64_t metrics_snapshot_finished(const struct metrics_snapshot *s,
                                   enum metrics_status st)
{
    return (unsigned)st < METRICS_STATUS_COUNT ? s->v[V_FINISHED + st] : 0;
}

uint64_t metrics_snapshot_upstream(const struct metrics_snapshot *s,
                                   int account, enum metrics_endpoint ep,
                                   enum metrics_outcome outcome)
{
    if ((unsigned)ep >= METRICS_EP_COUNT ||
        (unsigned)outcome >= METRICS_OUT_COUNT)
        return 0;
    return s->v[upstream_index(account, ep, outcome)];
}

long metrics_snapshot_in_flight(const struct metrics_snapshot *s)
{
    return (long)s->v[V_IN_FLIGHT];
}

/* ------------------------------------------------------------------ */
/* Prometheus text format 0.0.4.                                        */

struct out {
    char *p;
    size_t len, cap;
};

static void put(struct out *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void put(struct out *o, const char *fmt, ...)
{
    va_list ap;
    int n;

    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if ((size_t)n < o->cap - o->len) {
            o->len += (size_t)n;
            return;
        }
        o->cap = o->cap * 2 + (size_t)n;
        o->p = xrealloc(o->p, o->cap);
    }
}

/* A label value with \, " and newline escaped, as the format wants. */
static void put_escaped(struct out *o, const char *s)
{
    for (; *s != '\0'; s++) {
        if (*s == '\\')
            put(o, "\\\\");
        else if (*s == '"')
            put(o, "\\\"");
        else if (*s == '\n')
            put(o, "\\n");
        else
            put(o, "%c", *s);
    }
}

static void family(struct out *o, const char *name, const char *type,
                   const char *help)
{
    put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void histogram(struct out *o, const char *name, const char *help,
                      const uint64_t *v, const uint64_t *bounds, size_t n)
{
    uint64_t cum = 0;

    family(o, name, "histogram", help);
    for (size_t i = 0; i < n; i++) {
        cum += v[i];
        put(o, "%s_bucket{le=\"%g\"} %llu\n", name, (double)bounds[i] / 1000,
            (unsigned long long)cum);
    }
    cum += v[n];
    put(o, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cum);
    put(o, "%s_sum %.3f\n", name, (double)v[n + 1] / 1000);
    put(o, "%s_count %llu\n", name, (unsigned long long)cum);
}

static void counter(struct out *o, const char *name, const char *help,
                    uint64_t value)
{
    family(o, name, "counter", help);
    put(o, "%s %llu\n", name, (unsigned long long)value);
}

static void gauge(struct out *o, const char *name, const char *help,
                  long long value)
{
    family(o, name, "gauge", help);
    put(o, "%s %lld\n", name, value);
}

static void queues(struct out *o, const struct metrics_view *v)
{
    family(o, "mjq_queue_depth", "gauge",
           "Jobs waiting in each configured queue (LLEN), sampled by the "
           "supervisor about every second.");
    for (size_t i = 0; i < v->nqueues; i++) {
        if (!v->queues[i].sampled)
            continue;
        put(o, "mjq_queue_depth{queue=\"");
        put_escaped(o, v->queues[i].name);
        put(o, "\"} %lld\n", v->queues[i].depth);
    }
    family(o, "mjq_queue_oldest_age_seconds", "gauge",
           "Estimated age of the oldest job waiting in each queue (0 when "
           "empty), from the history of pushes the supervisor keeps; a lower "
           "bound when the job is older than that history (supervisor start "
           "or reload).");
    for (size_t i = 0; i < v->nqueues; i++) {
        if (!v->queues[i].sampled)
            continue;
        put(o, "mjq_queue_oldest_age_seconds{queue=\"");
        put_escaped(o, v->queues[i].name);
        put(o, "\"} %.3f\n", v->queues[i].oldest_age_s);
    }
}

static void upstream(struct out *o, const struct metrics_snapshot *s)
{
    family(o, "mjq_upstream_requests_total", "counter",
           "Requests to the MJ API that completed, by account, endpoint "
           "(submit, fetch, list, probe) and outcome (ok, retry, refused, "
           "not_found).");
    for (size_t a = 0; a < naccounts; a++)
        for (int e = 0; e < METRICS_EP_COUNT; e++)
            for (int r = 0; r < METRICS_OUT_COUNT; r++) {
                put(o, "mjq_upstream_requests_total{account=\"");
                put_escaped(o, accounts[a]);
                put(o, "\",endpoint=\"%s\",outcome=\"%s\"} %llu\n",
                    endpoint_names[e], outcome_names[r],
                    (unsigned long long)
                        s->v[upstream_index((int)a, (enum metrics_endpoint)e,
                                            (enum metrics_outcome)r)]);
            }
}

static const char *const change_names[METRICS_ACCOUNT_CHANGE_COUNT] = {
    "breaker_opened", "breaker_closed", "left_rotation", "returned"};

static void accounts_state(struct out *o, const struct metrics_snapshot *s)
{
    family(o, "mjq_account_up", "gauge",
           "1 while no running worker sees the upstream account out of "
           "rotation (key refused, out of quota) or with its circuit "
           "breaker open.");
    for (size_t a = 0; a < naccounts; a++) {
        put(o, "mjq_account_up{account=\"");
        put_escaped(o, accounts[a]);
        put(o, "\"} %d\n", s->v[V_ACCOUNT_DOWN + a] == 0);
    }
    family(o, "mjq_account_changes_total", "counter",
           "Changes of an upstream account's state seen by the workers, by "
           "change (breaker_opened, breaker_closed, left_rotation, "
           "returned).");
    for (size_t a = 0; a < naccounts; a++)
        for (int c = 0; c < METRICS_ACCOUNT_CHANGE_COUNT; c++) {
            put(o, "mjq_account_changes_total{account=\"");
            put_escaped(o, accounts[a]);
            put(o, "\",change=\"%s\"} %llu\n", change_names[c],
                (unsigned long long)
                    s->v[V_ACCOUNT_CHANGES + a * METRICS_ACCOUNT_CHANGE_COUNT +
                         (size_t)c]);
        }
}

char *metrics_render(const struct metrics_view *v, size_t *len)
{
    struct out o = {xmalloc(16384), 0, 16384};
    const struct metrics_snapshot *s = v->jobs;

    gauge(&o, "mjq_up", "1 while the supervisor answers.", 1);
    family(&o, "mjq_build_info", "gauge", "mjq version; the value is 1.");
    put(&o, "mjq_build_info{version=\"");
    put_escaped(&o, v->version);
    put(&o, "\"} 1\n");
    gauge(&o, "mjq_workers", "Worker processes running.", v->workers);
    counter(&o, "mjq_worker_restarts_total",
            "Worker processes restarted after they died.", v->restarts);
    gauge(&o, "mjq_draining",
          "1 while the supervisor drains its workers (SIGTERM).", v->draining);
    gauge(&o, "mjq_redis_up",
          "1 while the supervisor's Redis connection is up.", v->redis_up);
    queues(&o, v);
    gauge(&o, "mjq_jobs_in_flight", "Jobs the running workers hold now.",
          (long long)s->v[V_IN_FLIGHT]);
    counter(&o, "mjq_jobs_taken_total",
            "Payloads taken from the queues (a job handed back and taken "
            "again counts twice).",
            s->v[V_TAKEN]);
    family(&o, "mjq_jobs_finished_total", "counter",
           "Results written, by status.");
    for (int i = 0; i < METRICS_STATUS_COUNT; i++)
        put(&o, "mjq_jobs_finished_total{status=\"%s\"} %llu\n",
            status_names[i], (unsigned long long)s->v[V_FINISHED + i]);
    counter(&o, "mjq_jobs_handed_back_total",
            "Jobs given back to their queue by a draining worker.",
            s->v[V_HANDED_BACK]);
    family(&o, "mjq_retries_total", "counter",
           "Waits before trying again after transient trouble, by kind "
           "(submit, poll).");
    for (int i = 0; i < METRICS_RETRY_COUNT; i++)
        put(&o, "mjq_retries_total{kind=\"%s\"} %llu\n", retry_names[i],
            (unsigned long long)s->v[V_RETRIES + i]);
    counter(&o, "mjq_recoveries_total", "Jobs taken over from dead workers.",
            s->v[V_RECOVERIES]);
    counter(&o, "mjq_redis_reconnects_total",
            "Times a worker's Redis connection came back after a loss.",
            s->v[V_RECONNECTS]);
    upstream(&o, s);
    accounts_state(&o, s);
    histogram(&o, "mjq_queue_wait_seconds",
              "Time from enqueue to take, for jobs that carry enqueued_ms.",
              &s->v[V_QWAIT], qwait_bounds, NQWAIT);
    histogram(&o, "mjq_job_duration_seconds",
              "Time from the first take of a job to its result.", &s->v[V_DUR],
              dur_bounds, NDUR);
    *len = o.len;
    return o.p;
}
