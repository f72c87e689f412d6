#include "status.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include <hiredis/hiredis.h>
#include <jansson.h>

#include "cli.h"
#include "clock.h"
#include "config.h"
#include "job.h"
#include "jsonscan.h"
#include "keys.h"
#include "xmalloc.h"

/*
 * `mjq status`: one look at a deployment, read from Redis. Everything is
 * collected into one JSON document first (what --json prints); the human
 * summary is rendered from that document, so both always agree.
 *
 * Reads only: LLEN, SCAN, SMEMBERS, GET, PTTL, HGETALL, HLEN, XLEN, and
 * one read-only script that returns at most 2 x HEAD_BYTES of a queue's
 * oldest payload (payloads can be 32 MiB). Key names are those of
 * docs/architecture.md; the per-minute counters, the accounts hash and
 * the leases are written by other parts of mjq and are shown as zeros or
 * "none" while absent.
 */

#define PROG            "mjq status"
#define HEAD_BYTES      4096 /* of the oldest payload, for its id */
#define REDIS_TIMEOUT_S 5
#define MAX_LISTED      10000 /* keys found by SCAN that are shown */
#define NAME_MAX_SHOWN  40    /* column width cap for names */

static const char *const statuses[] = {"SUCCESS", "FAILURE", "CANCEL",
                                       "TIMEOUT", "INVALID", "DUPLICATE"};
#define NSTATUSES (sizeof(statuses) / sizeof(statuses[0]))

static const int windows_min[] = {1, 5, 15};
#define NWINDOWS (sizeof(windows_min) / sizeof(windows_min[0]))

/*
 * The oldest payload of a list (its right end: producers LPUSH, workers
 * take from the right) without transferring it: {first HEAD_BYTES, last
 * HEAD_BYTES or "" when the first already hold it all, length}, or nil
 * for an empty list.
 */
static const char oldest_lua[] = "local v = redis.call('LINDEX', KEYS[1], -1)\n"
                                 "if not v then return false end\n"
                                 "local n = tonumber(ARGV[1])\n"
                                 "local tail = ''\n"
                                 "if #v > n then tail = string.sub(v, -n) end\n"
                                 "return {string.sub(v, 1, n), tail, #v}\n";

struct status {
    redisContext *c;
    const struct config *cfg;
    int64_t now_ms; /* wall clock when collection started */
};

/* --- Redis --------------------------------------------------------------- */

static redisReply *cmd(struct status *st, const char *what, const char *fmt,
                       ...) __attribute__((format(printf, 3, 4)));

/* Runs one command; NULL (after printing why) on any error. */
static redisReply *cmd(struct status *st, const char *what, const char *fmt,
                       ...)
{
    va_list ap;
    void *reply;

    va_start(ap, fmt);
    reply = redisvCommand(st->c, fmt, ap);
    va_end(ap);
    return cli_checked(PROG, st->c, reply, what);
}

/* An integer reply's value; -1 for anything else. */
static long long int_of(const redisReply *r)
{
    return r != NULL && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
}

/*
 * Runs a command (LLEN, XLEN...) on one key whose reply is an integer,
 * into *out (0 when the reply is not an integer). Returns 0, or
 * -EX_UNAVAILABLE.
 */
static int cmd_int(struct status *st, const char *name, const char *key,
                   long long *out)
{
    redisReply *r = cmd(st, name, "%s %s", name, key);

    if (r == NULL)
        return -EX_UNAVAILABLE;
    *out = r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
    freeReplyObject(r);
    return 0;
}

/* The prefix with the glob characters of SCAN MATCH escaped. */
static void glob_escape(const char *in, char *out, size_t len)
{
    size_t o = 0;

    for (; *in != '\0' && o + 2 < len; in++) {
        if (strchr("*?[]\\", *in) != NULL)
            out[o++] = '\\';
        out[o++] = *in;
    }
    out[o] = '\0';
}

/*
 * One SCAN over the keyspace for the lists that are mjq's: adds the name
 * after "<prefix>queue:" to queues and the worker id after
 * "<prefix>processing:" to procs (JSON objects used as sets), up to
 * MAX_LISTED each. One pass, filtered by Redis (MATCH, TYPE list), since
 * the keyspace also holds every job record of the dedup window. Returns
 * 0 or -EX_UNAVAILABLE.
 */
static int scan_lists(struct status *st, json_t *queues, json_t *procs)
{
    char pattern[KEYS_MAX * 2 + 8], escaped[KEYS_MAX * 2], cursor[32] = "0";
    char qkey[KEYS_MAX], pkey[KEYS_MAX];
    size_t qlen, plen;

    glob_escape(st->cfg->prefix, escaped, sizeof(escaped));
    snprintf(pattern, sizeof(pattern), "%s[pq]*", escaped);
    qlen = strlen(keys_queue(qkey, sizeof(qkey), st->cfg->prefix, ""));
    plen = strlen(keys_processing(pkey, sizeof(pkey), st->cfg->prefix, ""));
    do {
        redisReply *r = cmd(st, "SCAN", "SCAN %s MATCH %s COUNT 1000 TYPE list",
                            cursor, pattern);
        const redisReply *keys;

        if (r == NULL)
            return -EX_UNAVAILABLE;
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
            r->element[0]->type != REDIS_REPLY_STRING ||
            r->element[1]->type != REDIS_REPLY_ARRAY) {
            fprintf(stderr, PROG ": redis SCAN: unexpected reply\n");
            freeReplyObject(r);
            return -EX_UNAVAILABLE;
        }
        snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
        keys = r->element[1];
        for (size_t i = 0; i < keys->elements; i++) {
            const redisReply *k = keys->element[i];

            if (k->type != REDIS_REPLY_STRING)
                continue;
            if (k->len > qlen && strncmp(k->str, qkey, qlen) == 0 &&
                json_object_size(queues) < MAX_LISTED)
                json_object_set_new(queues, k->str + qlen, json_true());
            else if (k->len > plen && strncmp(k->str, pkey, plen) == 0 &&
                     json_object_size(procs) < MAX_LISTED)
                json_object_set_new(procs, k->str + plen, json_true());
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    return 0;
}

/* --- the oldest waiting job ----------------------------------------------- */

/* A member's text span in a JSON prefix, only if it ends inside it. */
static int member_in(const char *json, size_t len, int whole, const char *key,
                     size_t *off, size_t *vlen)
{
    if (jsonscan_member(json, len, key, off, vlen) != 0 || *vlen == 0)
        return -1;
    /* In a cut document a value reaching the cut may be cut itself. */
    return whole || *off + *vlen < len ? 0 : -1;
}

/* Parses digits[0..len) as a non-negative integer; -1 if it is not one. */
static int64_t parse_ms(const char *digits, size_t len)
{
    int64_t v = 0;

    if (len == 0 || len > 18)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (digits[i] < '0' || digits[i] > '9')
            return -1;
        v = v * 10 + (digits[i] - '0');
    }
    return v;
}

/*
 * enqueued_ms as the last member of a payload, from its last bytes:
 * `"enqueued_ms": <digits> }` followed only by white space. A value
 * followed by exactly one closing brace at the very end belongs to the
 * top-level object (a nested object would need a second one).
 */
static int64_t enqueued_from_tail(const char *t, size_t len)
{
    static const char name[] = "\"enqueued_ms\"";
    size_t end = len, i, digits;

    while (end > 0 && strchr(" \t\r\n", t[end - 1]) != NULL)
        end--;
    if (end == 0 || t[end - 1] != '}')
        return -1;
    i = end - 1;
    while (i > 0 && strchr(" \t\r\n", t[i - 1]) != NULL)
        i--;
    digits = i;
    while (i > 0 && t[i - 1] >= '0' && t[i - 1] <= '9')
        i--;
    if (i == digits)
        return -1;
    digits = digits - i;
    {
        size_t v = i;

        while (i > 0 && strchr(" \t\r\n", t[i - 1]) != NULL)
            i--;
        if (i == 0 || t[i - 1] != ':')
            return -1;
        i--;
        while (i > 0 && strchr(" \t\r\n", t[i - 1]) != NULL)
            i--;
        if (i < sizeof(name) - 1 ||
            memcmp(t + i - (sizeof(name) - 1), name, sizeof(name) - 1) != 0)
            return -1;
        i -= sizeof(name) - 1;
        if (i > 0 && t[i - 1] == '\\')
            return -1;
        return parse_ms(t + v, digits);
    }
}

/*
 * What the head (and tail) of the oldest payload tell: a new object
 * {"id", "bytes", "enqueued_ms", "age_ms"}; id and the times are null when
 * they cannot be read from those bytes.
 */
static json_t *oldest_info(const struct status *st, const redisReply *r)
{
    const redisReply *head = r->element[0], *tail = r->element[1];
    long long total = int_of(r->element[2]);
    int whole = total >= 0 && (size_t)total <= head->len;
    json_t *o = json_object();
    char id[JOB_ID_MAX * 4 + 1];
    int64_t enq = -1;
    size_t off, vlen;

    json_object_set_new(o, "id", json_null());
    if (member_in(head->str, head->len, whole, "id", &off, &vlen) == 0 &&
        jsonscan_string(head->str + off, vlen, id, sizeof(id)) == 0 &&
        job_id_valid(id, strlen(id)))
        json_object_set_new(o, "id", json_string(id));
    json_object_set_new(o, "bytes", json_integer(total));
    if (member_in(head->str, head->len, whole, "enqueued_ms", &off, &vlen) == 0)
        enq = parse_ms(head->str + off, vlen);
    if (enq < 0 && !whole && tail->len > 0)
        enq = enqueued_from_tail(tail->str, tail->len);
    json_object_set_new(o, "enqueued_ms",
                        enq >= 0 ? json_integer(enq) : json_null());
    json_object_set_new(
        o, "age_ms",
        enq >= 0 ? json_integer(st->now_ms > enq ? st->now_ms - enq : 0)
                 : json_null());
    return o;
}

/* The oldest payload's info for the list key, json null if it is empty. */
static int oldest_of(struct status *st, const char *key, json_t **out)
{
    redisReply *r = cmd(st, "EVAL (oldest payload)", "EVAL %s 1 %s %d",
                        oldest_lua, key, HEAD_BYTES);

    if (r == NULL)
        return -EX_UNAVAILABLE;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
        r->element[0]->type == REDIS_REPLY_STRING &&
        r->element[1]->type == REDIS_REPLY_STRING)
        *out = oldest_info(st, r);
    else
        *out = json_null();
    freeReplyObject(r);
    return 0;
}

/* --- collection ---------------------------------------------------------- */

static int add_queue(struct status *st, json_t *queues, const char *name,
                     int configured)
{
    char key[KEYS_MAX];
    json_t *q, *oldest;
    long long depth;
    int rc;

    if (keys_queue(key, sizeof(key), st->cfg->prefix, name) == NULL)
        return 0; /* a name SCAN found that is too long to be ours */
    rc = cmd_int(st, "LLEN", key, &depth);
    if (rc == 0)
        rc = oldest_of(st, key, &oldest);
    if (rc < 0)
        return rc;
    q = json_object();
    json_object_set_new(q, "name", json_string(name));
    json_object_set_new(q, "key", json_string(key));
    json_object_set_new(q, "configured", json_boolean(configured));
    json_object_set_new(q, "depth", json_integer(depth));
    json_object_set_new(q, "oldest", oldest);
    json_array_append_new(queues, q);
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The keys of obj, sorted: a new array of borrowed strings (free it). */
static const char **sorted_keys(json_t *obj, size_t *n)
{
    const char **keys = xcalloc(json_object_size(obj) + 1, sizeof(*keys));
    const char *k;
    json_t *v;

    *n = 0;
    json_object_foreach(obj, k, v)
    {
        keys[(*n)++] = k;
    }
    qsort(keys, *n, sizeof(*keys), cmp_str);
    return keys;
}

/* Configured queues in priority order, then the others SCAN found. */
static int collect_queues(struct status *st, json_t *doc, json_t *found)
{
    json_t *queues = json_array();
    const char **names;
    size_t n;
    int rc = 0;

    json_object_set_new(doc, "queues", queues);
    for (size_t i = 0; i < st->cfg->nqueues && rc == 0; i++)
        rc = add_queue(st, queues, st->cfg->queues[i], 1);
    for (size_t i = 0; i < st->cfg->nqueues; i++)
        json_object_del(found, st->cfg->queues[i]);
    names = sorted_keys(found, &n);
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = add_queue(st, queues, names[i], 0);
    free(names);
    return rc;
}

/* One worker: its heartbeat (parsed), its TTL and its processing list. */
static int add_worker(struct status *st, json_t *workers, const char *id,
                      int registered)
{
    char hb[KEYS_MAX], proc[KEYS_MAX];
    redisReply *r;
    json_t *w;
    long long len, ttl;

    if (keys_heartbeat(hb, sizeof(hb), st->cfg->prefix, id) == NULL ||
        keys_processing(proc, sizeof(proc), st->cfg->prefix, id) == NULL)
        return 0;
    r = cmd(st, "GET", "GET %s", hb);
    if (r == NULL)
        return -EX_UNAVAILABLE;
    w = json_object();
    json_object_set_new(w, "id", json_string(id));
    json_object_set_new(w, "alive",
                        json_boolean(r->type == REDIS_REPLY_STRING));
    json_object_set_new(w, "registered", json_boolean(registered));
    if (r->type == REDIS_REPLY_STRING) {
        json_t *h = json_loadb(r->str, r->len, 0, NULL);

        if (json_is_object(h))
            json_object_set_new(w, "heartbeat", h);
        else {
            json_decref(h);
            json_object_set_new(w, "heartbeat_raw",
                                json_stringn_nocheck(r->str, r->len));
        }
    } else {
        json_object_set_new(w, "heartbeat", json_null());
    }
    freeReplyObject(r);
    if (cmd_int(st, "PTTL", hb, &ttl) != 0 ||
        cmd_int(st, "LLEN", proc, &len) != 0) {
        json_decref(w);
        return -EX_UNAVAILABLE;
    }
    json_object_set_new(w, "heartbeat_ttl_ms",
                        ttl >= 0 ? json_integer(ttl) : json_null());
    json_object_set_new(w, "processing", json_integer(len));
    json_array_append_new(workers, w);
    return 0;
}

/*
 * Registered workers (<prefix>workers) and any processing list whose
 * worker is not registered (left by a worker that died with no
 * supervisor around), sorted by id.
 */
static int collect_workers(struct status *st, json_t *doc, json_t *all)
{
    json_t *workers = json_array(), *registered = json_object();
    char key[KEYS_MAX];
    const char **ids = NULL;
    size_t n = 0;
    redisReply *r;
    int rc;

    json_object_set_new(doc, "workers", workers);
    keys_workers(key, sizeof(key), st->cfg->prefix);
    r = cmd(st, "SMEMBERS", "SMEMBERS %s", key);
    rc = r != NULL ? 0 : -EX_UNAVAILABLE;
    for (size_t i = 0; r != NULL && r->type == REDIS_REPLY_ARRAY &&
                       i < r->elements && i < MAX_LISTED;
         i++) {
        if (r->element[i]->type == REDIS_REPLY_STRING) {
            json_object_set_new(registered, r->element[i]->str, json_true());
            json_object_set_new(all, r->element[i]->str, json_true());
        }
    }
    if (r != NULL)
        freeReplyObject(r);
    if (rc == 0)
        ids = sorted_keys(all, &n);
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = add_worker(st, workers, ids[i],
                        json_object_get(registered, ids[i]) != NULL);
    free(ids);
    json_decref(registered);
    return rc;
}

/*
 * Adds one per-minute hash (STATUS -> count) into counts, for the windows
 * that include it. Values that are not whole numbers are ignored.
 */
static void add_minute(const redisReply *r, json_t *counts)
{
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements;
         i += 2) {
        const redisReply *k = r->element[i], *v = r->element[i + 1];
        json_int_t have;
        long long n;
        char *end;

        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            continue;
        errno = 0;
        n = strtoll(v->str, &end, 10);
        if (errno != 0 || end == v->str || *end != '\0' || n < 0)
            continue;
        have = json_integer_value(json_object_get(counts, k->str));
        json_object_set_new(counts, k->str, json_integer(have + n));
    }
}

/*
 * Finished jobs per status over the last 1, 5 and 15 minutes, from the
 * per-minute counters <prefix>stats:finished:<unix minute>. The current
 * minute is counted, so a window of N minutes covers N - 1 whole minutes
 * plus the seconds of the current one, and its rate is per minute of
 * that time.
 */
static int collect_finished(struct status *st, json_t *doc)
{
    int64_t minute = st->now_ms / 60000;
    double into = (double)(st->now_ms % 60000) / 1000.0;
    json_t *out = json_array(), *counts[NWINDOWS];
    char key[KEYS_MAX];
    long long xlen;

    json_object_set_new(doc, "finished", out);
    for (size_t w = 0; w < NWINDOWS; w++) {
        counts[w] = json_object();
        for (size_t i = 0; i < NSTATUSES; i++)
            json_object_set_new(counts[w], statuses[i], json_integer(0));
    }
    for (int back = 0; back < windows_min[NWINDOWS - 1]; back++) {
        redisReply *r;

        if (keys_stats_finished(key, sizeof(key), st->cfg->prefix,
                                (long long)(minute - back)) == NULL)
            break;
        r = cmd(st, "HGETALL", "HGETALL %s", key);
        if (r == NULL) {
            for (size_t w = 0; w < NWINDOWS; w++)
                json_decref(counts[w]);
            return -EX_UNAVAILABLE;
        }
        for (size_t w = 0; w < NWINDOWS; w++) {
            if (back < windows_min[w])
                add_minute(r, counts[w]);
        }
        freeReplyObject(r);
    }
    for (size_t w = 0; w < NWINDOWS; w++) {
        double secs = (windows_min[w] - 1) * 60.0 + (into < 1.0 ? 1.0 : into);
        json_t *win = json_object(), *v;
        json_int_t total = 0;
        const char *k;

        json_object_foreach(counts[w], k, v)
        {
            total += json_integer_value(v);
        }
        json_object_set_new(win, "minutes", json_integer(windows_min[w]));
        json_object_set_new(win, "seconds", json_real(secs));
        json_object_set_new(win, "counts", counts[w]);
        json_object_set_new(win, "total", json_integer(total));
        json_object_set_new(win, "per_minute",
                            json_real((double)total * 60.0 / secs));
        json_array_append_new(out, win);
    }
    keys_results(key, sizeof(key), st->cfg->prefix, NULL);
    if (cmd_int(st, "XLEN", key, &xlen) != 0)
        return -EX_UNAVAILABLE;
    json_object_set_new(doc, "results_stream", json_string(key));
    json_object_set_new(doc, "results_len", json_integer(xlen));
    return 0;
}

/* HLEN of <prefix>lease:<account>[:<mode>]; -1 on error. */
static long long lease_count(struct status *st, const char *account,
                             const char *mode)
{
    char key[KEYS_MAX * 2];
    long long n;
    if (keys_lease(key, sizeof(key), st->cfg->prefix, account, mode) == NULL)
        return 0;
    return cmd_int(st, "HLEN", key, &n) == 0 ? n : -1;
}

/* The modes an account names: its "modes" array and its mode_limits. */
static json_t *account_modes(const json_t *conf)
{
    json_t *modes = json_object(), *v;
    const char *k;
    size_t i;

    json_array_foreach(json_object_get(conf, "modes"), i, v)
    {
        if (json_is_string(v))
            json_object_set_new(modes, json_string_value(v), json_true());
    }
    json_object_foreach(json_object_get(conf, "mode_limits"), k, v)
    {
        json_object_set_new(modes, k, json_true());
    }
    return modes;
}

static int add_account(struct status *st, json_t *accounts, const char *name,
                       const redisReply *value)
{
    json_t *a = json_object(), *conf, *modes, *per_mode = json_object(), *v;
    const char *mode;
    long long n;

    conf = json_loadb(value->str, value->len, 0, NULL);
    json_object_set_new(a, "name", json_string(name));
    if (json_is_object(conf))
        json_object_set(a, "config", conf);
    else
        json_object_set_new(a, "config_raw",
                            json_stringn_nocheck(value->str, value->len));
    n = lease_count(st, name, NULL);
    json_object_set_new(a, "in_flight", json_integer(n));
    modes = account_modes(conf);
    json_object_foreach(modes, mode, v)
    {
        json_t *m = json_object();
        json_t *limit =
            json_object_get(json_object_get(conf, "mode_limits"), mode);
        long long k = lease_count(st, name, mode);

        if (k < 0)
            n = -1;
        json_object_set_new(m, "in_flight", json_integer(k));
        json_object_set(m, "limit", limit != NULL ? limit : json_null());
        json_object_set_new(per_mode, mode, m);
    }
    json_object_set_new(a, "modes", per_mode);
    json_array_append_new(accounts, a);
    json_decref(modes);
    json_decref(conf);
    return n < 0 ? -EX_UNAVAILABLE : 0;
}

/* <prefix>accounts (name -> JSON), each with its leases; null if none. */
static int collect_accounts(struct status *st, json_t *doc)
{
    json_t *accounts, *by_name = json_object();
    const char **names;
    char key[KEYS_MAX];
    redisReply *r;
    size_t n;
    int rc = 0;

    if (keys_accounts(key, sizeof(key), st->cfg->prefix) == NULL)
        r = NULL;
    else
        r = cmd(st, "HGETALL", "HGETALL %s", key);
    if (r == NULL) {
        json_decref(by_name);
        return -EX_UNAVAILABLE;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements == 0) {
        json_object_set_new(doc, "accounts", json_null());
        json_decref(by_name);
        freeReplyObject(r);
        return 0;
    }
    accounts = json_array();
    json_object_set_new(doc, "accounts", accounts);
    /* HGETALL's order is the hash's: show them sorted by name. */
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        if (r->element[i]->type == REDIS_REPLY_STRING &&
            r->element[i + 1]->type == REDIS_REPLY_STRING)
            json_object_set_new(by_name, r->element[i]->str,
                                json_integer((json_int_t)i + 1));
    }
    names = sorted_keys(by_name, &n);
    for (size_t i = 0; i < n && rc == 0; i++) {
        json_int_t v = json_integer_value(json_object_get(by_name, names[i]));

        rc = add_account(st, accounts, names[i], r->element[v]);
    }
    free(names);
    json_decref(by_name);
    freeReplyObject(r);
    return rc;
}

/* The dead stream's length and the holder of the sweep lock. */
static int collect_misc(struct status *st, json_t *doc)
{
    char key[KEYS_MAX];
    redisReply *r;
    long long n, ttl;

    keys_dead(key, sizeof(key), st->cfg->prefix);
    if (cmd_int(st, "XLEN", key, &n) != 0)
        return -EX_UNAVAILABLE;
    json_object_set_new(doc, "dead_stream", json_string(key));
    json_object_set_new(doc, "dead_len", json_integer(n));
    if (keys_sweep_lock(key, sizeof(key), st->cfg->prefix) == NULL)
        return 0;
    r = cmd(st, "GET", "GET %s", key);
    if (r == NULL)
        return -EX_UNAVAILABLE;
    if (cmd_int(st, "PTTL", key, &ttl) != 0) {
        freeReplyObject(r);
        return -EX_UNAVAILABLE;
    }
    if (r->type == REDIS_REPLY_STRING) {
        json_t *lock = json_object();

        json_object_set_new(lock, "holder",
                            json_stringn_nocheck(r->str, r->len));
        json_object_set_new(lock, "ttl_ms",
                            ttl >= 0 ? json_integer(ttl) : json_null());
        json_object_set_new(doc, "sweep_lock", lock);
    } else {
        json_object_set_new(doc, "sweep_lock", json_null());
    }
    json_object_set_new(doc, "sweep_lock_key", json_string(key));
    freeReplyObject(r);
    return 0;
}

static int collect(struct status *st, json_t *doc)
{
    json_t *found_queues = json_object(), *found_procs = json_object();
    char where[300];
    int rc;

    cli_redis_where(st->cfg, where, sizeof(where));
    json_object_set_new(doc, "redis", json_string(where));
    json_object_set_new(doc, "prefix", json_string(st->cfg->prefix));
    json_object_set_new(doc, "time_ms", json_integer(st->now_ms));
    rc = scan_lists(st, found_queues, found_procs);
    if (rc == 0)
        rc = collect_queues(st, doc, found_queues);
    if (rc == 0)
        rc = collect_workers(st, doc, found_procs);
    if (rc == 0)
        rc = collect_finished(st, doc);
    if (rc == 0)
        rc = collect_accounts(st, doc);
    if (rc == 0)
        rc = collect_misc(st, doc);
    json_decref(found_queues);
    json_decref(found_procs);
    return rc;
}

/* --- the human summary -----------------------------------------------------
 */

/* "4.2 s", "3 min 12 s", "2 h 3 min", "1 d 2 h". */
static void format_age(int64_t ms, char *buf, size_t len)
{
    int64_t s = ms / 1000;

    if (ms < 60000)
        snprintf(buf, len, "%.1f s", (double)ms / 1000.0);
    else if (s < 3600)
        snprintf(buf, len, "%" PRId64 " min %" PRId64 " s", s / 60, s % 60);
    else if (s < 86400)
        snprintf(buf, len, "%" PRId64 " h %" PRId64 " min", s / 3600,
                 s % 3600 / 60);
    else
        snprintf(buf, len, "%" PRId64 " d %" PRId64 " h", s / 86400,
                 s % 86400 / 3600);
}

static const char *str_of(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));

    return s != NULL ? s : "";
}

static long long int_at(const json_t *o, const char *key)
{
    return (long long)json_integer_value(json_object_get(o, key));
}

/* Compact JSON text of any value, for fields shown as they are. */
static void print_value(const json_t *v)
{
    char *text;

    if (json_is_string(v)) {
        fputs(json_string_value(v), stdout);
        return;
    }
    text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    fputs(text != NULL ? text : "?", stdout);
    free(text);
}

static int name_width(const json_t *arr, const char *key, int min)
{
    size_t i;
    json_t *v;
    int w = min;

    json_array_foreach(arr, i, v)
    {
        int n = (int)strlen(str_of(v, key));

        if (n > w)
            w = n;
    }
    return w > NAME_MAX_SHOWN ? NAME_MAX_SHOWN : w;
}

static void print_queues(const json_t *queues)
{
    int w = name_width(queues, "name", 5);
    size_t i;
    json_t *q;

    printf("Queues (%zu)\n  %-*s %9s  oldest waiting job\n",
           json_array_size(queues), w, "queue", "waiting");
    json_array_foreach(queues, i, q)
    {
        const json_t *o = json_object_get(q, "oldest");
        char age[64];

        printf("  %-*s %9lld  ", w, str_of(q, "name"), int_at(q, "depth"));
        if (!json_is_object(o)) {
            fputs("-", stdout);
        } else {
            const char *id = json_string_value(json_object_get(o, "id"));

            fputs(id != NULL ? id : "(id not readable)", stdout);
            if (json_is_integer(json_object_get(o, "age_ms"))) {
                format_age(int_at(o, "age_ms"), age, sizeof(age));
                printf(", waiting %s", age);
            } else {
                fputs(", age unknown (no enqueued_ms)", stdout);
            }
        }
        if (!json_is_true(json_object_get(q, "configured")))
            fputs("  [not configured here]", stdout);
        putchar('\n');
    }
}

/* A heartbeat's accounts object: "name state, name state". */
static void print_accounts_seen(const json_t *accounts, int indent)
{
    const char *name;
    json_t *v;
    int first = 1;

    printf("%*saccounts: ", indent, "");
    json_object_foreach((json_t *)accounts, name, v)
    {
        printf("%s%s ", first ? "" : ", ", name);
        print_value(v);
        first = 0;
    }
    if (first)
        fputs("(none)", stdout);
    putchar('\n');
}

/*
 * The heartbeat's fields beyond pid, jobs, finished and draining: the
 * accounts a worker sees on a line of their own, the rest as key=value.
 */
static void print_heartbeat_extras(const json_t *hb, int indent)
{
    const char *k;
    json_t *v;
    int any = 0;

    json_object_foreach((json_t *)hb, k, v)
    {
        if (strcmp(k, "accounts") == 0 && json_is_object(v)) {
            print_accounts_seen(v, indent);
            continue;
        }
        if (strcmp(k, "pid") == 0 || strcmp(k, "jobs") == 0 ||
            strcmp(k, "finished") == 0 || strcmp(k, "draining") == 0)
            continue;
        if (!any)
            printf("%*s", indent, "");
        printf("%s%s=", any ? "  " : "", k);
        print_value(v);
        any = 1;
    }
    if (any)
        putchar('\n');
}

static void print_worker(const json_t *wk, int w)
{
    const json_t *hb = json_object_get(wk, "heartbeat");
    long long proc = int_at(wk, "processing");

    printf("  %-*s  ", w, str_of(wk, "id"));
    if (!json_is_true(json_object_get(wk, "alive"))) {
        printf("dead%s  %lld job%s left in its processing list%s\n",
               json_is_true(json_object_get(wk, "registered"))
                   ? ""
                   : " (not registered)",
               proc, proc == 1 ? "" : "s",
               proc > 0 ? " (the sweep of `mjq run` returns them to their "
                          "queues)"
                        : "");
        return;
    }
    if (!json_is_object(hb)) {
        printf("live  heartbeat %s  processing %lld\n",
               str_of(wk, "heartbeat_raw"), proc);
        return;
    }
    printf("live%s  pid %lld  jobs %lld  finished %lld  processing %lld\n",
           json_is_true(json_object_get(hb, "draining")) ||
                   int_at(hb, "draining") != 0
               ? " (draining)"
               : "",
           int_at(hb, "pid"), int_at(hb, "jobs"), int_at(hb, "finished"), proc);
    print_heartbeat_extras(hb, w + 4);
}

static void print_workers(const json_t *workers)
{
    int w = name_width(workers, "id", 6);
    size_t i, live = 0;
    json_t *wk;

    json_array_foreach(workers, i, wk)
    {
        live += json_is_true(json_object_get(wk, "alive"));
    }
    printf("\nWorkers: %zu live, %zu dead\n", live,
           json_array_size(workers) - live);
    json_array_foreach(workers, i, wk)
    {
        print_worker(wk, w);
    }
}

static void print_finished(const json_t *doc)
{
    const json_t *wins = json_object_get(doc, "finished");
    /* The widest window comes last and holds every status seen. */
    const json_t *widest = json_array_get(wins, json_array_size(wins) - 1);
    const char *k;
    size_t i;
    json_t *v, *win;

    printf("\nJobs finished          ");
    json_array_foreach(wins, i, win)
    {
        printf(" %7lld min", int_at(win, "minutes"));
    }
    putchar('\n');
    /* The six statuses of the contract first, then any other. */
    json_object_foreach(json_object_get(widest, "counts"), k, v)
    {
        printf("  %-21s", k);
        json_array_foreach(wins, i, win)
        {
            printf(" %11lld", int_at(json_object_get(win, "counts"), k));
        }
        putchar('\n');
    }
    printf("  %-21s", "total");
    json_array_foreach(wins, i, win)
    {
        printf(" %11lld", int_at(win, "total"));
    }
    printf("\n  %-21s", "per minute");
    json_array_foreach(wins, i, win)
    {
        printf(" %11.1f", json_real_value(json_object_get(win, "per_minute")));
    }
    printf("\nResults stream %s: %lld entries\n", str_of(doc, "results_stream"),
           int_at(doc, "results_len"));
    printf("Dead stream %s: %lld entries\n", str_of(doc, "dead_stream"),
           int_at(doc, "dead_len"));
}

static void print_account(const json_t *a, int w)
{
    const json_t *conf = json_object_get(a, "config");
    const json_t *max = json_object_get(conf, "max_in_flight");
    const json_t *batch = json_object_get(conf, "batch_fetch");
    const char *mode;
    json_t *m;
    int first = 1;

    printf("  %-*s in flight %lld", w, str_of(a, "name"),
           int_at(a, "in_flight"));
    if (max != NULL) {
        fputs(" of ", stdout);
        print_value(max);
    }
    json_object_foreach(json_object_get(a, "modes"), mode, m)
    {
        const json_t *limit = json_object_get(m, "limit");

        printf("%s%s %lld", first ? "  modes: " : ", ", mode,
               int_at(m, "in_flight"));
        if (!json_is_null(limit)) {
            fputs(" of ", stdout);
            print_value(limit);
        }
        first = 0;
    }
    if (batch != NULL) {
        fputs("  batch_fetch ", stdout);
        print_value(batch);
    }
    if (conf == NULL)
        printf("  (not JSON: %s)", str_of(a, "config_raw"));
    putchar('\n');
}

static void print_accounts(const json_t *accounts)
{
    size_t i;
    json_t *a;
    int w = name_width(accounts, "name", 4);

    if (!json_is_array(accounts)) {
        printf("\nAccounts: no accounts published\n");
        return;
    }
    printf("\nAccounts (%zu)\n", json_array_size(accounts));
    json_array_foreach(accounts, i, a)
    {
        print_account(a, w);
    }
}

static void print_human(const json_t *doc)
{
    const json_t *lock = json_object_get(doc, "sweep_lock");
    char when[64];

    cli_format_ms(int_at(doc, "time_ms"), when, sizeof(when));
    printf("mjq status: redis %s, prefix %s, at %s\n\n", str_of(doc, "redis"),
           str_of(doc, "prefix"), when);
    print_queues(json_object_get(doc, "queues"));
    print_workers(json_object_get(doc, "workers"));
    print_finished(doc);
    print_accounts(json_object_get(doc, "accounts"));
    printf("\nRecovery lock %s: ", str_of(doc, "sweep_lock_key"));
    if (json_is_object(lock)) {
        char left[64];

        format_age(int_at(lock, "ttl_ms"), left, sizeof(left));
        printf("held by %s (expires in %s)\n", str_of(lock, "holder"), left);
    } else {
        printf("free\n");
    }
}

/* --- the command --------------------------------------------------------- */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: mjq status [--json] [settings]\n\n"
            "Prints what a deployment is doing, read from Redis: each "
            "queue's depth and\nits oldest waiting job (configured queues "
            "first, then any other\n<prefix>queue:* list), live and dead "
            "workers with their heartbeats and\nprocessing lists, jobs "
            "finished per status over the last 1, 5 and 15\nminutes, the "
            "results and dead streams' lengths, the accounts and their\n"
            "in-flight leases, and the holder of the recovery lock.\n\n"
            "  --json            one JSON document instead (for scripts)\n"
            "  --config FILE, --set KEY=VALUE and the setting flags below\n"
            "                    (--redis-url, --prefix, --queues...) as for "
            "`mjq worker`\n\n"
            "Exit codes: 0 printed, 64 usage, 69 Redis unreachable or "
            "failing, %d bad\nconfiguration.\n\n",
            MJQ_EXIT_CONFIG);
    config_usage(out);
}

int status_main(int argc, char **argv)
{
    struct config cfg;
    struct status st;
    int json_out = 0, rc;
    const struct cli_flag flags[] = {{"json", NULL, &json_out}};
    json_t *doc;

    rc = cli_parse(PROG, argc, argv, flags, sizeof(flags) / sizeof(flags[0]),
                   usage, &cfg);
    if (rc != 0) {
        config_free(&cfg);
        return rc > 0 ? 0 : -rc;
    }
    memset(&st, 0, sizeof(st));
    st.cfg = &cfg;
    st.c = cli_redis_open(PROG, &cfg, REDIS_TIMEOUT_S);
    if (st.c == NULL) {
        config_free(&cfg);
        return EX_UNAVAILABLE;
    }
    st.now_ms = clock_wall_ms();
    doc = json_object();
    rc = collect(&st, doc);
    if (rc == 0 && json_out) {
        json_dumpf(doc, stdout, JSON_COMPACT);
        putchar('\n');
    } else if (rc == 0) {
        print_human(doc);
    }
    json_decref(doc);
    redisFree(st.c);
    config_free(&cfg);
    return -rc;
}
