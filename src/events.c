#include "events.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>

#include <hiredis/hiredis.h>
#include <jansson.h>

#include "cli.h"
#include "clock.h"
#include "config.h"
#include "keys.h"
#include "xmalloc.h"

/*
 * `mjq events`: the events stream (<prefix>events, docs/contract.md
 * section 3) in readable form, one line per event. Without --since it
 * shows the last --count matching events; with --since, the events from
 * that time on. --follow then waits for new ones (XREAD BLOCK) until
 * SIGINT or SIGTERM.
 *
 * What is printed is a snapshot bounded by the stream's newest entry at
 * start: history is read up to it, and --follow reads what comes after
 * it, so no event is printed twice or skipped between the two.
 */

#define PROG            "mjq events"
#define REDIS_TIMEOUT_S 5
#define BLOCK_MS        500  /* XREAD BLOCK: how soon a signal is noticed */
#define PAGE            1000 /* entries per XRANGE / XREVRANGE call */
#define COUNT_DEFAULT   20
#define COUNT_MAX       10000000
#define MAX_TYPES       32
#define ENTRY_ID_MAX    64

struct opts {
    const char *id;    /* --id: only events of this job */
    const char *types; /* --type T[,T]: as typed */
    const char *since; /* --since: as typed */
    const char *count; /* --count: as typed */
    int follow;        /* --follow */
    int json_out;      /* --json */
};

struct filter {
    const char *id;
    char *types[MAX_TYPES]; /* owned */
    size_t ntypes;
};

/* Set by SIGINT/SIGTERM during --follow; read by the loop. */
static volatile sig_atomic_t stop_requested;

/*
 * WARNING: signal handler. Only sets the flag (errno is untouched): the
 * XREAD in progress returns within BLOCK_MS and the loop sees it.
 */
static void on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: mjq events [--follow] [--id JOB] [--type T[,T]] "
            "[--since WHEN]\n"
            "                  [--count N] [--json] [settings]\n\n"
            "Prints the events stream (<prefix>events), oldest first, one "
            "event a line:\ntime (UTC), type, worker, job id (- if none), "
            "then the other fields as\nkey=value.\n\n"
            "  --follow          after the history, print new events as "
            "they arrive,\n"
            "                    until SIGINT or SIGTERM (exit 0)\n"
            "  --id JOB          only the events of job JOB\n"
            "  --type T[,T]      only events of these types (taken, "
            "submitted, progress,\n"
            "                    retry, finished, recovered, worker_started, "
            "...)\n"
            "  --since WHEN      events from WHEN on: a duration back from "
            "now (90s, 5m,\n"
            "                    2h, 1d), a UTC time "
            "(2026-11-29T18:00:00Z, offsets and\n"
            "                    .mmm allowed) or unix milliseconds\n"
            "  --count N         at most N events of history: the last N "
            "(default %d),\n"
            "                    or with --since the first N (default: "
            "all); 0 with\n"
            "                    --follow shows only new events\n"
            "  --json            one JSON object a line (every field, plus "
            "stream_id)\n"
            "  --config FILE, --set KEY=VALUE and the setting flags below\n"
            "                    (--redis-url, --prefix...) as for `mjq "
            "worker`\n\n"
            "Exit codes: 0 done (or stopped by SIGINT/SIGTERM with "
            "--follow), 64 usage,\n69 Redis unreachable or failing, %d bad "
            "configuration.\n\n",
            COUNT_DEFAULT, MJQ_EXIT_CONFIG);
    config_usage(out);
}

/* --- options ------------------------------------------------------------- */

/* Parses a whole decimal number in [0, max]; -1 if it is not one. */
static long long parse_count(const char *s, long long max)
{
    char *end;
    long long v;

    if (*s < '0' || *s > '9')
        return -1;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v > max)
        return -1;
    return v;
}

/* Parses exactly n digits at s into *out. */
static int digits(const char *s, int n, int *out)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

/*
 * "YYYY-MM-DD", or "YYYY-MM-DDTHH:MM:SS[.mmm](Z|+HH:MM|-HH:MM)" (a space
 * may stand for the T) as unix ms; -1 if it is not one.
 */
static int64_t parse_iso(const char *s)
{
    struct tm tm;
    int year, mon, day, h = 0, m = 0, sec = 0, ms = 0, oh = 0, om = 0;
    int sign = 0;
    size_t len = strlen(s), i = 19;
    time_t t;

    if (len < 10 || digits(s, 4, &year) || s[4] != '-' ||
        digits(s + 5, 2, &mon) || s[7] != '-' || digits(s + 8, 2, &day))
        return -1;
    if (len > 10) {
        if ((s[10] != 'T' && s[10] != ' ') || len < 20 ||
            digits(s + 11, 2, &h) || s[13] != ':' || digits(s + 14, 2, &m) ||
            s[16] != ':' || digits(s + 17, 2, &sec))
            return -1;
        if (s[i] == '.') {
            int scale = 100;

            for (i++; s[i] >= '0' && s[i] <= '9'; i++) {
                ms += (s[i] - '0') * scale;
                scale /= 10;
            }
        }
        if (s[i] == 'Z' && s[i + 1] == '\0')
            sign = 0;
        else if ((s[i] == '+' || s[i] == '-') && strlen(s + i) == 6 &&
                 digits(s + i + 1, 2, &oh) == 0 && s[i + 3] == ':' &&
                 digits(s + i + 4, 2, &om) == 0 && oh < 24 && om < 60)
            sign = s[i] == '+' ? 1 : -1;
        else
            return -1;
    }
    if (mon < 1 || mon > 12 || day < 1 || day > 31 || h > 23 || m > 59 ||
        sec > 60)
        return -1;
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = year - 1900;
    tm.tm_mon = mon - 1;
    tm.tm_mday = day;
    tm.tm_hour = h;
    tm.tm_min = m;
    tm.tm_sec = sec;
    t = timegm(&tm);
    if (t == (time_t)-1 || t < 0)
        return -1;
    if (sign != 0)
        t -= sign * (oh * 3600 + om * 60);
    return (int64_t)t * 1000 + ms;
}

/*
 * --since: "90s", "5m", "2h", "1d" back from now_ms, an ISO time, or unix
 * ms. Returns unix ms, or -1 if WHEN is none of them.
 */
static int64_t parse_since(const char *s, int64_t now_ms)
{
    size_t len = strlen(s);
    long long n;
    int64_t unit = 0;
    char num[24];

    if (len >= 2 && len < sizeof(num) && strchr("smhd", s[len - 1]) != NULL) {
        unit = s[len - 1] == 's'   ? 1000
               : s[len - 1] == 'm' ? 60000
               : s[len - 1] == 'h' ? 3600000
                                   : 86400000;
        snprintf(num, sizeof(num), "%.*s", (int)(len - 1), s);
        n = parse_count(num, 100LL * 365 * 86400);
        if (n < 0)
            return -1;
        return now_ms - n * unit > 0 ? now_ms - n * unit : 0;
    }
    if (len > 4 && s[4] == '-')
        return parse_iso(s);
    n = parse_count(s, INT64_MAX / 2);
    return n;
}

/* Splits --type into f->types. Returns 0 or -EX_USAGE. */
static int parse_types(const char *list, struct filter *f)
{
    const char *p = list;

    while (*p != '\0') {
        size_t n = strcspn(p, ",");

        if (n == 0 || n > 64 || f->ntypes == MAX_TYPES) {
            fprintf(stderr,
                    PROG ": --type: want names separated by commas (at "
                         "most %d)\n",
                    MAX_TYPES);
            return -EX_USAGE;
        }
        f->types[f->ntypes++] = xstrndup(p, n);
        p += n;
        if (*p == ',' && *++p == '\0') {
            fprintf(stderr, PROG ": --type: empty name after ','\n");
            return -EX_USAGE;
        }
    }
    return 0;
}

/* --- entries ------------------------------------------------------------- */

/* The field value of a stream entry's field array, or NULL. */
static const redisReply *entry_field(const redisReply *kv, const char *name)
{
    for (size_t i = 0; i + 1 < kv->elements; i += 2) {
        if (kv->element[i]->type == REDIS_REPLY_STRING &&
            strcmp(kv->element[i]->str, name) == 0 &&
            kv->element[i + 1]->type == REDIS_REPLY_STRING)
            return kv->element[i + 1];
    }
    return NULL;
}

/* A well-formed entry: [id, [field, value, ...]]. */
static int entry_ok(const redisReply *e)
{
    return e->type == REDIS_REPLY_ARRAY && e->elements == 2 &&
           e->element[0]->type == REDIS_REPLY_STRING &&
           e->element[1]->type == REDIS_REPLY_ARRAY;
}

static int matches(const struct filter *f, const redisReply *kv)
{
    const redisReply *v;

    if (f->id != NULL) {
        v = entry_field(kv, "id");
        if (v == NULL || strcmp(v->str, f->id) != 0)
            return 0;
    }
    if (f->ntypes == 0)
        return 1;
    v = entry_field(kv, "type");
    for (size_t i = 0; v != NULL && i < f->ntypes; i++) {
        if (strcmp(v->str, f->types[i]) == 0)
            return 1;
    }
    return 0;
}

/* Prints a value as it is, or JSON-quoted if it is empty or has blanks,
 * quotes, '=' or control characters. */
static void print_field_value(const redisReply *v)
{
    int plain = v->len > 0;
    json_t *s;
    char *q;

    for (size_t i = 0; plain && i < v->len; i++) {
        unsigned char ch = (unsigned char)v->str[i];

        if (ch <= ' ' || ch == '"' || ch == '=' || ch == 0x7f)
            plain = 0;
    }
    if (plain) {
        fwrite(v->str, 1, v->len, stdout);
        return;
    }
    s = json_stringn_nocheck(v->str, v->len);
    q = s != NULL ? json_dumps(s, JSON_ENCODE_ANY) : NULL;
    fputs(q != NULL ? q : "\"?\"", stdout);
    free(q);
    json_decref(s);
}

/* Unix ms of an event: its ts field, else the entry id's time part. */
static int64_t event_ms(const redisReply *e)
{
    const redisReply *ts = entry_field(e->element[1], "ts");
    const char *src = ts != NULL ? ts->str : e->element[0]->str;
    char *end;
    long long v;

    errno = 0;
    v = strtoll(src, &end, 10);
    if (errno != 0 || end == src || v < 0 || (ts != NULL && *end != '\0'))
        return -1;
    return v;
}

static void print_line(const redisReply *e)
{
    static const char *const fixed[] = {"type", "ts", "worker", "id"};
    const redisReply *kv = e->element[1], *v;
    char when[64];

    cli_format_ms(event_ms(e), when, sizeof(when));
    v = entry_field(kv, "type");
    printf("%s %-16s", when, v != NULL ? v->str : "?");
    v = entry_field(kv, "worker");
    printf(" %s", v != NULL ? v->str : "-");
    v = entry_field(kv, "id");
    printf(" %s", v != NULL ? v->str : "-");
    for (size_t i = 0; i + 1 < kv->elements; i += 2) {
        const redisReply *k = kv->element[i];
        int skip = k->type != REDIS_REPLY_STRING ||
                   kv->element[i + 1]->type != REDIS_REPLY_STRING;

        for (size_t j = 0; !skip && j < sizeof(fixed) / sizeof(fixed[0]); j++)
            skip = strcmp(k->str, fixed[j]) == 0;
        if (skip)
            continue;
        printf(" %s=", k->str);
        print_field_value(kv->element[i + 1]);
    }
    putchar('\n');
}

static void print_json(const redisReply *e)
{
    json_t *o = cli_entry_object(e->element[1]);

    json_object_set_new(o, "stream_id", json_string(e->element[0]->str));
    json_dumpf(o, stdout, JSON_COMPACT);
    putchar('\n');
    json_decref(o);
}

static void print_event(const redisReply *e, int json_out)
{
    if (json_out)
        print_json(e);
    else
        print_line(e);
}

/* --- reading ------------------------------------------------------------- */

struct reader {
    redisContext *c;
    const char *stream;
    const struct filter *filter;
    int json_out;
    char last[ENTRY_ID_MAX]; /* newest entry at start: history ends here */
};

/* Reads the newest entry id into r->last ("0-0" for an empty stream). */
static int read_last(struct reader *rd)
{
    redisReply *r =
        cli_checked(PROG, rd->c,
                    redisCommand(rd->c, "XREVRANGE %s + - COUNT 1", rd->stream),
                    "XREVRANGE");

    if (r == NULL)
        return -EX_UNAVAILABLE;
    snprintf(rd->last, sizeof(rd->last), "0-0");
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
        entry_ok(r->element[0]))
        snprintf(rd->last, sizeof(rd->last), "%s",
                 r->element[0]->element[0]->str);
    freeReplyObject(r);
    return 0;
}

/*
 * The last `count` matching events up to r->last, printed oldest first.
 * Pages backwards; the replies are kept until printed (events are small).
 */
static int print_last(struct reader *rd, long long count)
{
    redisReply **pages = NULL;
    const redisReply **hits = NULL;
    size_t npages = 0, nhits = 0;
    char end[ENTRY_ID_MAX + 1];
    int rc = 0, more = strcmp(rd->last, "0-0") != 0;

    snprintf(end, sizeof(end), "%s", rd->last);
    while (more && (long long)nhits < count) {
        redisReply *r =
            cli_checked(PROG, rd->c,
                        redisCommand(rd->c, "XREVRANGE %s %s - COUNT %d",
                                     rd->stream, end, PAGE),
                        "XREVRANGE");

        if (r == NULL) {
            rc = -EX_UNAVAILABLE;
            break;
        }
        pages = xrealloc(pages, (npages + 1) * sizeof(*pages));
        pages[npages++] = r;
        more = r->type == REDIS_REPLY_ARRAY && r->elements == PAGE;
        for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements &&
                           (long long)nhits < count;
             i++) {
            const redisReply *e = r->element[i];

            if (!entry_ok(e))
                continue;
            /* "(" + id: exclusive end for the next page (Redis 6.2). */
            snprintf(end, sizeof(end), "(%s", e->element[0]->str);
            if (!matches(rd->filter, e->element[1]))
                continue;
            hits = xrealloc(hits, (nhits + 1) * sizeof(*hits));
            hits[nhits++] = e;
        }
    }
    for (size_t i = nhits; rc == 0 && i > 0; i--)
        print_event(hits[i - 1], rd->json_out);
    for (size_t i = 0; i < npages; i++)
        freeReplyObject(pages[i]);
    free(pages);
    free(hits);
    return rc;
}

/* Matching events from since_ms up to r->last, oldest first, at most
 * count of them (count < 0: all). */
static int print_since(struct reader *rd, int64_t since_ms, long long count)
{
    char start[ENTRY_ID_MAX + 1];
    long long printed = 0;
    int more = strcmp(rd->last, "0-0") != 0;

    snprintf(start, sizeof(start), "%" PRId64 "-0", since_ms);
    while (more && (count < 0 || printed < count)) {
        redisReply *r =
            cli_checked(PROG, rd->c,
                        redisCommand(rd->c, "XRANGE %s %s %s COUNT %d",
                                     rd->stream, start, rd->last, PAGE),
                        "XRANGE");

        if (r == NULL)
            return -EX_UNAVAILABLE;
        more = r->type == REDIS_REPLY_ARRAY && r->elements == PAGE;
        for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements &&
                           (count < 0 || printed < count);
             i++) {
            const redisReply *e = r->element[i];

            if (!entry_ok(e))
                continue;
            snprintf(start, sizeof(start), "(%s", e->element[0]->str);
            if (matches(rd->filter, e->element[1])) {
                print_event(e, rd->json_out);
                printed++;
            }
        }
        freeReplyObject(r);
    }
    return 0;
}

/* Prints new events after r->last until a stop signal. */
static int follow(struct reader *rd)
{
    while (!stop_requested) {
        redisReply *r = cli_checked(
            PROG, rd->c,
            redisCommand(rd->c, "XREAD COUNT %d BLOCK %d STREAMS %s %s", PAGE,
                         BLOCK_MS, rd->stream, rd->last),
            "XREAD");
        const redisReply *entries;

        if (r == NULL)
            return stop_requested ? 0 : -EX_UNAVAILABLE;
        /* nil: nothing within BLOCK_MS. Else [[stream, [entry...]]]. */
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
            r->element[0]->type == REDIS_REPLY_ARRAY &&
            r->element[0]->elements == 2 &&
            r->element[0]->element[1]->type == REDIS_REPLY_ARRAY) {
            entries = r->element[0]->element[1];
            for (size_t i = 0; i < entries->elements; i++) {
                const redisReply *e = entries->element[i];

                if (!entry_ok(e))
                    continue;
                snprintf(rd->last, sizeof(rd->last), "%s", e->element[0]->str);
                if (matches(rd->filter, e->element[1]))
                    print_event(e, rd->json_out);
            }
            fflush(stdout);
        }
        freeReplyObject(r);
    }
    return 0;
}

static void catch_stop_signals(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: a blocking read returns early */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* --- the command --------------------------------------------------------- */

/* Checks the options into filter, since_ms (-1: none) and count (-1:
 * all). Returns 0 or -EX_USAGE. */
static int check_opts(const struct opts *o, struct filter *f, int64_t *since_ms,
                      long long *count)
{
    *since_ms = -1;
    *count = COUNT_DEFAULT;
    f->id = o->id;
    if (o->id != NULL && o->id[0] == '\0') {
        fprintf(stderr, PROG ": --id: empty\n");
        return -EX_USAGE;
    }
    if (o->types != NULL && parse_types(o->types, f) != 0)
        return -EX_USAGE;
    if (o->since != NULL) {
        *since_ms = parse_since(o->since, clock_wall_ms());
        if (*since_ms < 0) {
            fprintf(stderr,
                    PROG ": --since '%s': want 90s, 5m, 2h, 1d, a UTC time "
                         "like 2026-11-29T18:00:00Z, or unix ms\n",
                    o->since);
            return -EX_USAGE;
        }
        *count = -1;
    }
    if (o->count != NULL) {
        *count = parse_count(o->count, COUNT_MAX);
        if (*count < 0) {
            fprintf(stderr, PROG ": --count: want a whole number 0..%d\n",
                    COUNT_MAX);
            return -EX_USAGE;
        }
    }
    return 0;
}

int events_main(int argc, char **argv)
{
    struct opts o;
    struct filter f;
    struct reader rd;
    struct config cfg;
    char stream[KEYS_MAX];
    int64_t since_ms = -1;
    long long count = COUNT_DEFAULT;
    int rc;

    memset(&o, 0, sizeof(o));
    memset(&f, 0, sizeof(f));
    memset(&rd, 0, sizeof(rd));
    {
        const struct cli_flag flags[] = {
            {"id", &o.id, NULL},         {"type", &o.types, NULL},
            {"since", &o.since, NULL},   {"count", &o.count, NULL},
            {"follow", NULL, &o.follow}, {"json", NULL, &o.json_out},
        };

        rc = cli_parse(PROG, argc, argv, flags,
                       sizeof(flags) / sizeof(flags[0]), usage, &cfg);
    }
    if (rc == 0)
        rc = check_opts(&o, &f, &since_ms, &count);
    if (rc != 0)
        goto out;
    keys_events(stream, sizeof(stream), cfg.prefix);
    rd.stream = stream;
    rd.filter = &f;
    rd.json_out = o.json_out;
    if (o.follow) {
        catch_stop_signals();
        setvbuf(stdout, NULL, _IOLBF, 0);
    }
    rd.c = cli_redis_open(PROG, &cfg, REDIS_TIMEOUT_S);
    if (rd.c == NULL) {
        rc = -EX_UNAVAILABLE;
        goto out;
    }
    rc = read_last(&rd);
    if (rc == 0 && count != 0)
        rc = since_ms >= 0 ? print_since(&rd, since_ms, count)
                           : print_last(&rd, count);
    fflush(stdout);
    if (rc == 0 && o.follow)
        rc = follow(&rd);
out:
    if (rd.c != NULL)
        redisFree(rd.c);
    for (size_t i = 0; i < f.ntypes; i++)
        free(f.types[i]);
    config_free(&cfg);
    return rc > 0 ? 0 : -rc;
}
