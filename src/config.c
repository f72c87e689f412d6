#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libconfig.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "xmalloc.h"

/*
 * One table drives defaults, the file, the environment, the flags, usage
 * and dump (pgbouncer's cf_* table, without its globals). Every value, from
 * wherever it comes, is text parsed by apply_text(), so a bad value gets the
 * same reason from any source; only err->key says where it came from.
 */

#define MAX_QUEUES     16
#define MAX_QUEUE_NAME 64
#define MAX_PREFIX     64
#define MAX_POLL       32
#define MAX_KEY_FILE   65536 /* an API key file larger than this is a mistake */

enum kind {
    KIND_REDIS_URL, /* redis_* fields, from one URL */
    KIND_PREFIX,    /* char *, 1..64, no whitespace */
    KIND_QUEUES,    /* queues + nqueues */
    KIND_BASE_URL,  /* char *, http(s), no credentials, trailing / stripped */
    KIND_HOOK_URL,  /* char *, http(s) or empty for none */
    KIND_SECRET,    /* char *, never shown */
    KIND_KEY_FILE,  /* char *, a path; read once every layer is applied */
    KIND_ROUTE,     /* char *, "" or "/path" */
    KIND_INT,       /* int, min..max */
    KIND_LONG,      /* long, min..max */
    KIND_SIZE,      /* long bytes, min..max, optional binary suffix */
    KIND_MS_LIST,   /* poll_schedule_ms + npoll_schedule */
    KIND_LEVEL,     /* enum log_level */
    KIND_FORMAT,    /* enum log_format */
    KIND_MODES,     /* unsigned mode mask from names: default,fast,... */
    KIND_BOOL,      /* int 0/1 from true/false/yes/no/on/off/1/0 */
    KIND_AUTH,      /* enum auth_style from bearer/mj-api-secret/raw */
    KIND_LISTEN,    /* admin_listen/host/port: "HOST:PORT", "" = none */
};

struct setting {
    const char *key;  /* libconfig path, also the key of flags and dump */
    const char *env;  /* environment variable */
    const char *flag; /* long flag without dashes; NULL: not on the CLI */
    enum kind kind;
    size_t offset; /* of the field in struct config */
    long long min, max;
    const char *def; /* default as text; NULL: unset */
    const char *meaning;
};

#define OFF(field) offsetof(struct config, field)

/* clang-format off */
static const struct setting settings[] = {
    {"redis.url", "MJQ_REDIS_URL", "redis-url", KIND_REDIS_URL,
     OFF(redis_url), 0, 0, "redis://127.0.0.1:6379/0",
     "redis://[user:pw@]host[:port][/db] or unix:///sock[?db=N]"},
    {"redis.prefix", "MJQ_PREFIX", "prefix", KIND_PREFIX,
     OFF(prefix), 0, 0, "mjq:",
     "prefix of every Redis key (1-64 characters)"},
    {"queues", "MJQ_QUEUES", "queues", KIND_QUEUES,
     OFF(queues), 0, 0, "default",
     "queues to take jobs from, comma-separated, in strict priority order"},
    {"api.base_url", "MJQ_API_BASE_URL", "api-base-url", KIND_BASE_URL,
     OFF(api.base_url), 0, 0, "http://127.0.0.1:8080",
     "MJ API base URL, http:// or https://, without credentials"},
    {"api.key", "MJQ_API_KEY", NULL, KIND_SECRET,
     OFF(api.key), 0, 0, NULL,
     "API key sent with every API request (secret)"},
    {"api.key_file", "MJQ_API_KEY_FILE", "api-key-file", KIND_KEY_FILE,
     OFF(api.key_file), 0, 0, NULL,
     "file holding the API key, read at start (instead of api.key)"},
    {"api.auth", "MJQ_API_AUTH", "api-auth", KIND_AUTH,
     OFF(api.auth), 0, 0, "bearer",
     "how the key is sent: bearer, mj-api-secret or raw"},
    {"api.timeout_ms", "MJQ_API_TIMEOUT_MS", "api-timeout-ms", KIND_LONG,
     OFF(api.timeout_ms), 100, 600000, "30000",
     "whole HTTP request timeout, milliseconds"},
    {"api.connect_timeout_ms", "MJQ_API_CONNECT_TIMEOUT_MS",
     "api-connect-timeout-ms", KIND_LONG,
     OFF(api.connect_timeout_ms), 100, 60000, "5000",
     "TCP/TLS connect timeout, milliseconds"},
    {"api.notify_hook", "MJQ_NOTIFY_HOOK", "notify-hook", KIND_HOOK_URL,
     OFF(notify_hook), 0, 0, NULL,
     "notifyHook URL sent with every submit; empty: none"},
    {"api.routes.default", "MJQ_ROUTE_DEFAULT", "route-default", KIND_ROUTE,
     OFF(api.routes[MODE_DEFAULT]), 0, 0, "",
     "path prefix before /mj/... for default-mode jobs"},
    {"api.routes.fast", "MJQ_ROUTE_FAST", "route-fast", KIND_ROUTE,
     OFF(api.routes[MODE_FAST]), 0, 0, "/mj-fast",
     "path prefix before /mj/... for fast-mode jobs"},
    {"api.routes.relax", "MJQ_ROUTE_RELAX", "route-relax", KIND_ROUTE,
     OFF(api.routes[MODE_RELAX]), 0, 0, "/mj-relax",
     "path prefix before /mj/... for relax-mode jobs"},
    {"api.routes.turbo", "MJQ_ROUTE_TURBO", "route-turbo", KIND_ROUTE,
     OFF(api.routes[MODE_TURBO]), 0, 0, "/mj-turbo",
     "path prefix before /mj/... for turbo-mode jobs"},
    {"api.modes", "MJQ_API_MODES", "api-modes", KIND_MODES,
     OFF(api.modes), 0, 0, "default,fast,relax,turbo",
     "speed modes the account serves"},
    {"api.max_in_flight", "MJQ_API_MAX_IN_FLIGHT", "api-max-in-flight",
     KIND_INT, OFF(api.max_in_flight), 0, 1000000, "0",
     "jobs in flight upstream on the account, all workers; 0: no limit"},
    {"api.limits.default", "MJQ_API_LIMIT_DEFAULT", "api-limit-default",
     KIND_INT, OFF(api.mode_limit[MODE_DEFAULT]), 0, 1000000, "0",
     "jobs in flight upstream without mode, all workers; 0: no limit"},
    {"api.limits.fast", "MJQ_API_LIMIT_FAST", "api-limit-fast",
     KIND_INT, OFF(api.mode_limit[MODE_FAST]), 0, 1000000, "0",
     "jobs in flight upstream in fast mode, all workers; 0: no limit"},
    {"api.limits.relax", "MJQ_API_LIMIT_RELAX", "api-limit-relax",
     KIND_INT, OFF(api.mode_limit[MODE_RELAX]), 0, 1000000, "0",
     "jobs in flight upstream in relax mode, all workers; 0: no limit"},
    {"api.limits.turbo", "MJQ_API_LIMIT_TURBO", "api-limit-turbo",
     KIND_INT, OFF(api.mode_limit[MODE_TURBO]), 0, 1000000, "0",
     "jobs in flight upstream in turbo mode, all workers; 0: no limit"},
    {"api.batch_fetch", "MJQ_API_BATCH_FETCH", "api-batch-fetch", KIND_BOOL,
     OFF(api.batch_fetch), 0, 0, "false",
     "poll tasks with one list-by-condition request per batch"},
    {"api.batch_size", "MJQ_API_BATCH_SIZE", "api-batch-size", KIND_INT,
     OFF(api.batch_size), 1, 1000, "100",
     "task ids per list-by-condition request"},
    {"api.batch_window_ms", "MJQ_API_BATCH_WINDOW_MS", "api-batch-window-ms",
     KIND_LONG, OFF(api.batch_window_ms), 0, 60000, "500",
     "how long a due poll waits for others to share its batch, ms"},
    {"api.min_poll_interval_ms", "MJQ_API_MIN_POLL_INTERVAL_MS",
     "api-min-poll-interval-ms", KIND_LONG,
     OFF(api.min_poll_interval_ms), 0, 3600000, "0",
     "never poll one task of the account faster than this, ms"},
    {"api.breaker_failures", "MJQ_API_BREAKER_FAILURES",
     "api-breaker-failures", KIND_INT,
     OFF(breaker_failures), 1, 1000, "5",
     "consecutive transport errors or 5xx that pause an account's submits"},
    {"api.breaker_open_ms", "MJQ_API_BREAKER_OPEN_MS", "api-breaker-open-ms",
     KIND_LONG, OFF(breaker_open_ms), 100, 3600000, "10000",
     "first submit pause of a failing account, ms; doubles per failed probe"},
    {"api.probe_interval_ms", "MJQ_API_PROBE_INTERVAL_MS",
     "api-probe-interval-ms", KIND_LONG,
     OFF(probe_interval_ms), 1000, 86400000, "60000",
     "probe period of an account out of rotation (key rejected, quota), ms"},
    {"worker.concurrency", "MJQ_CONCURRENCY", "concurrency", KIND_INT,
     OFF(concurrency), 1, 100000, "100",
     "jobs in flight per worker process"},
    {"worker.poll_schedule_ms", "MJQ_POLL_SCHEDULE_MS", "poll-schedule-ms",
     KIND_MS_LIST, OFF(poll_schedule_ms), 0, 3600000, "2000,4000,8000",
     "task poll delays, milliseconds, comma-separated; the last repeats"},
    {"worker.job_timeout_s", "MJQ_JOB_TIMEOUT_S", "job-timeout-s", KIND_LONG,
     OFF(mode_timeout_s[MODE_DEFAULT]), 1, 604800, "600",
     "deadline of a job without mode that sets none, seconds"},
    {"worker.job_timeout_fast_s", "MJQ_JOB_TIMEOUT_FAST_S",
     "job-timeout-fast-s", KIND_LONG,
     OFF(mode_timeout_s[MODE_FAST]), 1, 604800, "600",
     "deadline of a fast-mode job that sets none, seconds"},
    {"worker.job_timeout_relax_s", "MJQ_JOB_TIMEOUT_RELAX_S",
     "job-timeout-relax-s", KIND_LONG,
     OFF(mode_timeout_s[MODE_RELAX]), 1, 604800, "3600",
     "deadline of a relax-mode job that sets none, seconds"},
    {"worker.job_timeout_turbo_s", "MJQ_JOB_TIMEOUT_TURBO_S",
     "job-timeout-turbo-s", KIND_LONG,
     OFF(mode_timeout_s[MODE_TURBO]), 1, 604800, "600",
     "deadline of a turbo-mode job that sets none, seconds"},
    {"worker.task_owner_ttl_s", "MJQ_TASK_OWNER_TTL_S", "task-owner-ttl-s",
     KIND_LONG, OFF(task_owner_ttl_s), 60, 31536000, "2592000",
     "how long a task's account is remembered for its follow-ups, seconds"},
    {"worker.dedup_window_s", "MJQ_DEDUP_WINDOW_S", "dedup-window-s",
     KIND_LONG, OFF(dedup_window_s), 1, 31536000, "86400",
     "how long taken job ids are remembered against resubmits, seconds"},
    {"worker.max_job_bytes", "MJQ_MAX_JOB_BYTES", "max-job-bytes", KIND_SIZE,
     OFF(max_job_bytes), 1024, 536870912, "33554432",
     "largest job payload, bytes; suffix k/K/KiB or m/M/MiB allowed"},
    {"worker.submit_max_attempts", "MJQ_SUBMIT_MAX_ATTEMPTS",
     "submit-max-attempts", KIND_INT,
     OFF(submit_max_attempts), 1, 100, "8",
     "submit attempts on transient failures before the job fails"},
    {"worker.retry_base_ms", "MJQ_RETRY_BASE_MS", "retry-base-ms", KIND_LONG,
     OFF(retry_base_ms), 0, 600000, "1000",
     "first retry delay, milliseconds (doubles per attempt)"},
    {"worker.retry_max_ms", "MJQ_RETRY_MAX_MS", "retry-max-ms", KIND_LONG,
     OFF(retry_max_ms), 0, 600000, "30000",
     "retry delay cap, milliseconds (>= retry_base_ms)"},
    {"worker.lost_after_not_found", "MJQ_LOST_AFTER_NOT_FOUND",
     "lost-after-not-found", KIND_INT,
     OFF(lost_after_not_found), 1, 100, "3",
     "consecutive not-found fetches before a task is lost"},
    {"worker.max_recoveries", "MJQ_MAX_RECOVERIES", "max-recoveries",
     KIND_INT, OFF(max_recoveries), 0, 1000, "3",
     "times a job may be taken over from a dead worker before it fails"},
    {"worker.heartbeat_ms", "MJQ_HEARTBEAT_MS", "heartbeat-ms", KIND_LONG,
     OFF(heartbeat_ms), 100, 60000, "2000",
     "worker heartbeat period, milliseconds"},
    {"worker.heartbeat_ttl_ms", "MJQ_HEARTBEAT_TTL_MS", "heartbeat-ttl-ms",
     KIND_LONG, OFF(heartbeat_ttl_ms), 100, 600000, "6000",
     "heartbeat key TTL, milliseconds (> heartbeat_ms)"},
    {"worker.shutdown_timeout_s", "MJQ_SHUTDOWN_TIMEOUT_S",
     "shutdown-timeout-s", KIND_LONG,
     OFF(shutdown_timeout_s), 1, 3600, "10",
     "drain budget after SIGTERM, seconds"},
    {"results.maxlen", "MJQ_RESULTS_MAXLEN", "results-maxlen", KIND_LONG,
     OFF(results_maxlen), 1, 10000000000LL, "1000000",
     "approximate MAXLEN of the results stream, entries"},
    {"events.maxlen", "MJQ_EVENTS_MAXLEN", "events-maxlen", KIND_LONG,
     OFF(events_maxlen), 1, 10000000000LL, "100000",
     "approximate MAXLEN of the events stream, entries"},
    {"supervisor.workers", "MJQ_WORKERS", "workers", KIND_INT,
     OFF(workers), 1, 256, "1",
     "worker processes started by `mjq run`"},
    {"supervisor.sweep_interval_ms", "MJQ_SWEEP_INTERVAL_MS",
     "sweep-interval-ms", KIND_LONG,
     OFF(sweep_interval_ms), 100, 60000, "2000",
     "period of the recovery sweep of dead workers' jobs, milliseconds"},
    {"admin.listen", "MJQ_HTTP_LISTEN", "http-listen", KIND_LISTEN,
     OFF(admin_listen), 0, 0, NULL,
     "HOST:PORT of `mjq run`'s /healthz /readyz /metrics; empty: off"},
    {"log.level", "MJQ_LOG_LEVEL", "log-level", KIND_LEVEL,
     OFF(log_level), 0, 0, "info",
     "debug, info, warn or error"},
    {"log.format", "MJQ_LOG_FORMAT", "log-format", KIND_FORMAT,
     OFF(log_format), 0, 0, "text",
     "text or json (one object per line)"},
};
/* clang-format on */

#define NSETTINGS (sizeof(settings) / sizeof(settings[0]))

static const char *const level_names[] = {"debug", "info", "warn", "error"};
static const char *const format_names[] = {"text", "json"};

/* Precedence layers, lowest first; the higher one wins. */
enum layer {
    LAYER_DEFAULT,
    LAYER_FILE,
    LAYER_ENV,
    LAYER_FLAG,
};

/* Where a setting's current value came from, to name it in errors. */
struct origin {
    enum layer layer;
    char file[256]; /* LAYER_FILE: file of the setting (may be @included) */
    int line;
};

static int fail(struct config_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Writes the reason and returns -1, so parsers can `return fail(...)`. */
static int fail(struct config_error *err, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err->reason, sizeof(err->reason), fmt, ap);
    va_end(ap);
    return -1;
}

static void *field(struct config *cfg, const struct setting *s)
{
    return (char *)cfg + s->offset;
}

static const void *cfield(const struct config *cfg, const struct setting *s)
{
    return (const char *)cfg + s->offset;
}

/* Replaces an owned string; the old value is freed. */
static void replace_str(char **dst, char *value)
{
    free(*dst);
    *dst = value;
}

/* Frees a string that may hold a secret, wiping it first. */
static void free_secret(char *s)
{
    if (s != NULL) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

static void free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static bool has_space_or_ctl(const char *s)
{
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;

        if (c <= ' ' || c == 0x7f)
            return true;
    }
    return false;
}

static const struct setting *find_setting(const char *key)
{
    for (size_t i = 0; i < NSETTINGS; i++) {
        if (strcmp(settings[i].key, key) == 0)
            return &settings[i];
    }
    return NULL;
}

static const struct setting *find_kind(enum kind kind)
{
    for (size_t i = 0; i < NSETTINGS; i++) {
        if (settings[i].kind == kind)
            return &settings[i];
    }
    return NULL;
}

/* True if `path` is a group of the file ("api", "api.routes"). */
static bool is_group_key(const char *path)
{
    size_t len = strlen(path);

    for (size_t i = 0; i < NSETTINGS; i++) {
        if (strncmp(settings[i].key, path, len) == 0 &&
            settings[i].key[len] == '.')
            return true;
    }
    return false;
}

/*
 * Parses a whole string as a base-10 integer in min..max. Leading
 * whitespace, trailing junk and the empty string are "not an integer".
 */
static int parse_integer(const char *text, long long min, long long max,
                         long long *out, struct config_error *err)
{
    char *end;
    long long v;

    if (text[0] == '\0' || isspace((unsigned char)text[0]))
        return fail(err, "not an integer");
    errno = 0;
    v = strtoll(text, &end, 10);
    if (end == text || *end != '\0')
        return fail(err, "not an integer");
    if (errno == ERANGE || v < min || v > max)
        return fail(err, "must be between %lld and %lld", min, max);
    *out = v;
    return 0;
}

/* Like parse_integer(), for a length-delimited part of a URL. */
static int parse_part(const char *p, size_t len, const char *what,
                      long long min, long long max, long long *out,
                      struct config_error *err)
{
    char buf[32];
    struct config_error tmp;

    if (len >= sizeof(buf))
        return fail(err, "%s: must be between %lld and %lld", what, min, max);
    memcpy(buf, p, len);
    buf[len] = '\0';
    if (parse_integer(buf, min, max, out, &tmp) < 0)
        return fail(err, "%s: %s", what, tmp.reason);
    return 0;
}

/* A byte count with an optional binary suffix: 32M, 512KiB, 1048576. */
static int parse_size(const char *text, long long min, long long max,
                      long long *out, struct config_error *err)
{
    static const struct {
        const char *suffix;
        long long mult;
    } units[] = {
        {"k", 1024},    {"K", 1024},    {"KiB", 1024},
        {"m", 1048576}, {"M", 1048576}, {"MiB", 1048576},
    };
    char *end;
    long long v, mult = 1;

    if (text[0] == '\0' || isspace((unsigned char)text[0]))
        return fail(err, "not an integer");
    errno = 0;
    v = strtoll(text, &end, 10);
    if (end == text)
        return fail(err, "not an integer");
    if (*end != '\0') {
        size_t i;

        for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
            if (strcmp(end, units[i].suffix) == 0)
                break;
        }
        if (i == sizeof(units) / sizeof(units[0]))
            return fail(err, "not a size (bytes, or a number with suffix "
                             "k, K, KiB, m, M or MiB)");
        mult = units[i].mult;
    }
    if (errno == ERANGE || v > LLONG_MAX / mult || v < LLONG_MIN / mult ||
        v * mult < min || v * mult > max)
        return fail(err, "must be between %lld and %lld bytes", min, max);
    *out = v * mult;
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes %xx escapes of a URL part into a new string; %00 is refused. */
static int percent_decode(const char *p, size_t len, char **out,
                          struct config_error *err)
{
    char *s = xmalloc(len + 1);
    size_t n = 0;

    for (size_t i = 0; i < len; i++) {
        int hi, lo;

        if (p[i] != '%') {
            s[n++] = p[i];
            continue;
        }
        hi = i + 2 < len ? hexval(p[i + 1]) : -1;
        lo = i + 2 < len ? hexval(p[i + 2]) : -1;
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
            s[n] = '\0';
            free_secret(s);
            return fail(err, "bad %%-escape in the credentials");
        }
        s[n++] = (char)(hi * 16 + lo);
        i += 2;
    }
    s[n] = '\0';
    *out = s;
    return 0;
}

struct redis_target {
    char *host;
    int port;
    char *unix_path;
    char *username;
    char *password;
    int db;
};

static void redis_target_free(struct redis_target *t)
{
    free(t->host);
    free(t->unix_path);
    free(t->username);
    free_secret(t->password);
    memset(t, 0, sizeof(*t));
}

/*
 * "user:password" or ":password". A bare "secret@" is refused: redis-cli
 * reads it as a password and redis-py as a user name.
 */
static int parse_userinfo(const char *p, size_t len, struct redis_target *t,
                          struct config_error *err)
{
    const char *colon = memchr(p, ':', len);
    size_t ulen;

    if (colon == NULL)
        return fail(err, "credentials must be written user:password@ "
                         "or :password@");
    ulen = (size_t)(colon - p);
    if (colon + 1 == p + len)
        return fail(err, "empty password");
    if (ulen > 0 && percent_decode(p, ulen, &t->username, err) < 0)
        return -1;
    return percent_decode(colon + 1, len - ulen - 1, &t->password, err);
}

static int parse_redis_tcp(const char *rest, struct redis_target *t,
                           struct config_error *err)
{
    const char *at = strrchr(rest, '@');
    const char *host = rest, *p;
    size_t hlen;
    long long v = 0;

    if (at != NULL) {
        if (parse_userinfo(rest, (size_t)(at - rest), t, err) < 0)
            return -1;
        host = at + 1;
    }
    if (host[0] == '[') {
        const char *close = strchr(host, ']');

        if (close == NULL)
            return fail(err, "unterminated [ in host");
        host++;
        hlen = (size_t)(close - host);
        p = close + 1;
        if (*p != '\0' && *p != ':' && *p != '/')
            return fail(err, "unexpected text after ]");
    } else {
        hlen = strcspn(host, ":/");
        p = host + hlen;
    }
    if (hlen == 0)
        return fail(err, "missing host");
    t->host = xstrndup(host, hlen);
    t->port = 6379;
    if (*p == ':') {
        size_t plen = strcspn(p + 1, "/");

        if (parse_part(p + 1, plen, "port", 1, 65535, &v, err) < 0)
            return -1;
        t->port = (int)v;
        p += 1 + plen;
    }
    if (*p == '/' && p[1] != '\0') {
        if (parse_part(p + 1, strlen(p + 1), "database", 0, INT_MAX, &v, err) <
            0)
            return -1;
        t->db = (int)v;
    }
    return 0;
}

static int parse_redis_unix(const char *rest, struct redis_target *t,
                            struct config_error *err)
{
    const char *path = rest, *q;
    long long v = 0;

    if (rest[0] != '/') {
        const char *at = strstr(rest, "@/");

        if (at == NULL)
            return fail(err, "socket path must be absolute: "
                             "unix:///path/to/redis.sock");
        if (parse_userinfo(rest, (size_t)(at - rest), t, err) < 0)
            return -1;
        path = at + 1;
    }
    q = strchr(path, '?');
    if ((q != NULL ? (size_t)(q - path) : strlen(path)) < 2)
        return fail(err, "missing socket path");
    if (q != NULL) {
        if (strncmp(q, "?db=", 4) != 0)
            return fail(err, "only ?db=N may follow the socket path");
        if (parse_part(q + 4, strlen(q + 4), "database", 0, INT_MAX, &v, err) <
            0)
            return -1;
        t->db = (int)v;
    }
    t->unix_path =
        q != NULL ? xstrndup(path, (size_t)(q - path)) : xstrdup(path);
    return 0;
}

static int set_redis_url(struct config *cfg, const char *url,
                         struct config_error *err)
{
    struct redis_target t = {0};
    int rc;

    if (strncasecmp(url, "rediss://", 9) == 0)
        return fail(err, "TLS to Redis is not supported by this build");
    if (has_space_or_ctl(url))
        return fail(err, "must not contain whitespace or control characters");
    if (strncasecmp(url, "redis://", 8) == 0)
        rc = parse_redis_tcp(url + 8, &t, err);
    else if (strncasecmp(url, "unix://", 7) == 0)
        rc = parse_redis_unix(url + 7, &t, err);
    else
        rc = fail(err, "must start with redis:// or unix://");
    if (rc < 0) {
        redis_target_free(&t);
        return -1;
    }
    free_secret(cfg->redis_url);
    free(cfg->redis_host);
    free(cfg->redis_unix_path);
    free(cfg->redis_username);
    free_secret(cfg->redis_password);
    cfg->redis_url = xstrdup(url);
    cfg->redis_host = t.host;
    cfg->redis_port = t.unix_path != NULL ? 0 : t.port;
    cfg->redis_unix_path = t.unix_path;
    cfg->redis_username = t.username;
    cfg->redis_password = t.password;
    cfg->redis_db = t.db;
    return 0;
}

/*
 * Checks an http(s) URL. The base URL gets the API routes appended, so it
 * may have a path but no query or fragment. Neither may carry credentials:
 * they would end up in logs and in `ps`.
 */
static int check_http_url(const char *url, bool base, struct config_error *err)
{
    const char *auth, *host, *p;
    size_t alen, hlen;
    long long port = 0;

    if (strncasecmp(url, "http://", 7) == 0)
        auth = url + 7;
    else if (strncasecmp(url, "https://", 8) == 0)
        auth = url + 8;
    else
        return fail(err, "must start with http:// or https://");
    if (has_space_or_ctl(url))
        return fail(err, "must not contain whitespace or control characters");
    alen = strcspn(auth, "/?#");
    if (memchr(auth, '@', alen) != NULL)
        return fail(err, base ? "must not contain credentials; put the key "
                                "in api.key or api.key_file"
                              : "must not contain credentials");
    host = auth;
    if (host[0] == '[') {
        const char *close = memchr(host, ']', alen);

        if (close == NULL)
            return fail(err, "unterminated [ in host");
        hlen = (size_t)(close - host) - 1;
        p = close + 1;
    } else {
        hlen = strcspn(host, ":/?#");
        p = host + hlen;
    }
    if (hlen == 0)
        return fail(err, "missing host");
    if (*p == ':' && parse_part(p + 1, (size_t)(auth + alen - p - 1), "port", 1,
                                65535, &port, err) < 0)
        return -1;
    if (*p != ':' && p != auth + alen)
        return fail(err, "unexpected text after the host");
    if (base && strpbrk(auth, "?#") != NULL)
        return fail(err, "must not contain a query or fragment (the API "
                         "routes are appended to it)");
    return 0;
}

/*
 * "HOST:PORT" of the admin endpoint: HOST a name, an IPv4 address or a
 * bracketed IPv6 address ("[::]:9187"), PORT 1..65535. "" turns it off.
 */
static int set_listen(struct config *cfg, const char *text,
                      struct config_error *err)
{
    const char *colon, *host = text;
    size_t hlen;
    long long port = 0;

    if (text[0] == '\0') {
        replace_str(&cfg->admin_listen, NULL);
        replace_str(&cfg->admin_host, NULL);
        cfg->admin_port = 0;
        return 0;
    }
    if (has_space_or_ctl(text))
        return fail(err, "must not contain whitespace or control characters");
    if (text[0] == '[') {
        const char *close = strchr(text, ']');

        if (close == NULL)
            return fail(err, "unterminated [ in the address");
        host = text + 1;
        hlen = (size_t)(close - host);
        colon = close + 1;
        if (*colon != ':')
            return fail(err, "expected HOST:PORT, e.g. [::]:9187");
    } else {
        colon = strrchr(text, ':');
        if (colon == NULL)
            return fail(err, "expected HOST:PORT, e.g. 0.0.0.0:9187");
        hlen = (size_t)(colon - text);
        if (memchr(text, ':', hlen) != NULL)
            return fail(err, "an IPv6 address must be in brackets: "
                             "[::1]:9187");
    }
    if (hlen == 0)
        return fail(err, "missing host (0.0.0.0 listens on every "
                         "interface)");
    if (colon[1] == '\0')
        return fail(err, "missing port after ':'");
    if (parse_part(colon + 1, strlen(colon + 1), "port", 1, 65535, &port, err) <
        0)
        return -1;
    replace_str(&cfg->admin_listen, xstrdup(text));
    replace_str(&cfg->admin_host, xstrndup(host, hlen));
    cfg->admin_port = (int)port;
    return 0;
}

static int check_route(const char *route, struct config_error *err)
{
    size_t len = strlen(route);

    if (len == 0)
        return 0;
    if (route[0] != '/')
        return fail(err, "must be empty or start with /");
    if (route[len - 1] == '/')
        return fail(err, "must not end with /");
    if (has_space_or_ctl(route) || strpbrk(route, "?#") != NULL)
        return fail(err, "must not contain whitespace, control characters, "
                         "? or #");
    return 0;
}

/* An API key goes into an HTTP header: no CR/LF (header injection). */
static int check_key(const char *key, struct config_error *err)
{
    if (key[0] == '\0')
        return fail(err, "must not be empty (leave it unset to send no key)");
    if (has_space_or_ctl(key))
        return fail(err, "must not contain whitespace or control characters");
    return 0;
}

/*
 * Reads an API key file: trailing whitespace (the usual final newline) is
 * stripped. Errors name the file and errno, never any of its content.
 */
static int read_key_file(const char *path, char **out, struct config_error *err)
{
    struct stat st;
    char *buf = NULL;
    size_t len = 0;
    int fd, rc = -1;

    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return fail(err, "cannot read the key file: %s", strerror(errno));
    if (fstat(fd, &st) < 0) {
        fail(err, "cannot read the key file: %s", strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        fail(err, "the key file is not a regular file");
        goto out;
    }
    buf = xmalloc(MAX_KEY_FILE + 1);
    for (;;) {
        ssize_t n = read(fd, buf + len, MAX_KEY_FILE + 1 - len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            fail(err, "cannot read the key file: %s", strerror(errno));
            goto out;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > MAX_KEY_FILE) {
            fail(err, "the key file is larger than %d bytes", MAX_KEY_FILE);
            goto out;
        }
    }
    while (len > 0 && isspace((unsigned char)buf[len - 1]))
        len--;
    buf[len] = '\0';
    if (len == 0) {
        fail(err, "the key file is empty");
        goto out;
    }
    if (memchr(buf, '\0', len) != NULL || has_space_or_ctl(buf)) {
        fail(err, "the key in the file contains whitespace or control "
                  "characters");
        goto out;
    }
    *out = xstrndup(buf, len);
    rc = 0;
out:
    if (buf != NULL) {
        explicit_bzero(buf, MAX_KEY_FILE + 1);
        free(buf);
    }
    close(fd);
    return rc;
}

static int set_queues(struct config *cfg, char *const *items, size_t n,
                      struct config_error *err)
{
    static const char allowed[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                  "abcdefghijklmnopqrstuvwxyz"
                                  "0123456789._:-";

    if (n == 0)
        return fail(err, "at least one queue is required");
    if (n > MAX_QUEUES)
        return fail(err, "at most %d queues", MAX_QUEUES);
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(items[i]), ok = strspn(items[i], allowed);

        if (len == 0)
            return fail(err, "empty queue name");
        if (len > MAX_QUEUE_NAME)
            return fail(err,
                        "queue name \"%.*s...\" is longer than %d "
                        "characters",
                        20, items[i], MAX_QUEUE_NAME);
        if (ok < len && isgraph((unsigned char)items[i][ok]))
            return fail(err,
                        "queue name \"%s\": '%c' is not allowed (use "
                        "A-Z a-z 0-9 . _ : -)",
                        items[i], items[i][ok]);
        if (ok < len)
            return fail(err,
                        "queue name \"%s\": byte 0x%02x is not allowed (use "
                        "A-Z a-z 0-9 . _ : -)",
                        items[i], (unsigned char)items[i][ok]);
        for (size_t j = 0; j < i; j++) {
            if (strcmp(items[i], items[j]) == 0)
                return fail(err, "duplicate queue \"%s\"", items[i]);
        }
    }
    free_strv(cfg->queues, cfg->nqueues);
    cfg->queues = xcalloc(n, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        cfg->queues[i] = xstrdup(items[i]);
    cfg->nqueues = n;
    return 0;
}

static int set_poll_schedule(struct config *cfg, const struct setting *s,
                             char *const *items, size_t n,
                             struct config_error *err)
{
    long *v;

    if (n == 0)
        return fail(err, "at least one poll delay is required");
    if (n > MAX_POLL)
        return fail(err, "at most %d poll delays", MAX_POLL);
    v = xcalloc(n, sizeof(long));
    for (size_t i = 0; i < n; i++) {
        struct config_error tmp;
        long long x = 0;

        if (parse_integer(items[i], s->min, s->max, &x, &tmp) < 0) {
            free(v);
            return fail(err, "\"%.40s\": %s", items[i], tmp.reason);
        }
        v[i] = (long)x;
    }
    free(cfg->poll_schedule_ms);
    cfg->poll_schedule_ms = v;
    cfg->npoll_schedule = n;
    return 0;
}

/* List settings given as items (a libconfig list, or a split string). */
static int apply_items(struct config *cfg, const struct setting *s,
                       char *const *items, size_t n, struct config_error *err)
{
    if (s->kind == KIND_QUEUES)
        return set_queues(cfg, items, n, err);
    return set_poll_schedule(cfg, s, items, n, err);
}

/* Splits "a, b,c" into trimmed items; "" and "  " give none. */
static char **split_list(const char *text, size_t *n)
{
    size_t cap = 1, count = 0;
    const char *p = text;
    char **items;

    for (const char *c = text; *c != '\0'; c++)
        cap += *c == ',';
    items = xcalloc(cap, sizeof(char *));
    if (text[strspn(text, " \t")] == '\0') {
        *n = 0;
        return items;
    }
    for (;;) {
        size_t len = strcspn(p, ",");
        const char *b = p, *e = p + len;

        while (b < e && (*b == ' ' || *b == '\t'))
            b++;
        while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        items[count++] = xstrndup(b, (size_t)(e - b));
        if (p[len] == '\0')
            break;
        p += len + 1;
    }
    *n = count;
    return items;
}

static const char *const auth_names[] = {"bearer", "mj-api-secret", "raw"};

static const char *const mode_names[MODE_COUNT] = {"default", "fast", "relax",
                                                   "turbo"};

/* "fast, relax" -> a mask of modes; at least one, no repeats. */
static int set_modes(unsigned *out, const char *text, struct config_error *err)
{
    size_t n;
    char **items = split_list(text, &n);
    unsigned mask = 0;
    int rc = 0;

    if (n == 0)
        rc = fail(err, "at least one mode is required (default, fast, "
                       "relax, turbo)");
    for (size_t i = 0; i < n && rc == 0; i++) {
        int m;

        for (m = 0; m < MODE_COUNT; m++)
            if (strcmp(items[i], mode_names[m]) == 0)
                break;
        if (m == MODE_COUNT)
            rc = fail(err,
                      "\"%.40s\" is not a mode (default, fast, relax, "
                      "turbo)",
                      items[i]);
        else if (mask & (1u << m))
            rc = fail(err, "mode \"%s\" is listed twice", items[i]);
        else
            mask |= 1u << m;
    }
    free_strv(items, n);
    if (rc == 0)
        *out = mask;
    return rc;
}

static int set_bool(int *out, const char *text, struct config_error *err)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};

    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strcasecmp(text, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(text, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return fail(err, "must be true or false");
}

/*
 * The one parser of a value given as text. On failure cfg is unchanged and
 * err->reason says why; the caller fills err->key and err->value.
 */
static int apply_text(struct config *cfg, const struct setting *s,
                      const char *text, struct config_error *err)
{
    char **str = field(cfg, s);
    long long v = 0, max = s->max;
    size_t n, len;
    char **items;
    int rc;

    if (max > LONG_MAX && (s->kind == KIND_LONG || s->kind == KIND_SIZE))
        max = LONG_MAX;
    switch (s->kind) {
    case KIND_REDIS_URL:
        return set_redis_url(cfg, text, err);
    case KIND_PREFIX:
        len = strlen(text);
        if (len == 0 || len > MAX_PREFIX)
            return fail(err, "must be 1 to %d characters", MAX_PREFIX);
        if (has_space_or_ctl(text))
            return fail(err,
                        "must not contain whitespace or control characters");
        replace_str(str, xstrdup(text));
        return 0;
    case KIND_QUEUES:
    case KIND_MS_LIST:
        items = split_list(text, &n);
        rc = apply_items(cfg, s, items, n, err);
        free_strv(items, n);
        return rc;
    case KIND_BASE_URL:
        if (check_http_url(text, true, err) < 0)
            return -1;
        len = strlen(text);
        while (len > 0 && text[len - 1] == '/')
            len--;
        replace_str(str, xstrndup(text, len));
        return 0;
    case KIND_HOOK_URL:
        if (text[0] != '\0' && check_http_url(text, false, err) < 0)
            return -1;
        replace_str(str, text[0] != '\0' ? xstrdup(text) : NULL);
        return 0;
    case KIND_SECRET:
        if (check_key(text, err) < 0)
            return -1;
        free_secret(*str);
        *str = xstrdup(text);
        return 0;
    case KIND_KEY_FILE:
        if (text[0] == '\0')
            return fail(err, "must not be empty");
        replace_str(str, xstrdup(text));
        return 0;
    case KIND_ROUTE:
        if (check_route(text, err) < 0)
            return -1;
        replace_str(str, xstrdup(text));
        return 0;
    case KIND_INT:
    case KIND_LONG:
        if (parse_integer(text, s->min, max, &v, err) < 0)
            return -1;
        if (s->kind == KIND_INT)
            *(int *)field(cfg, s) = (int)v;
        else
            *(long *)field(cfg, s) = (long)v;
        return 0;
    case KIND_SIZE:
        if (parse_size(text, s->min, max, &v, err) < 0)
            return -1;
        *(long *)field(cfg, s) = (long)v;
        return 0;
    case KIND_LEVEL:
        if (log_level_parse(text, field(cfg, s)) < 0)
            return fail(err, "must be one of debug, info, warn, error");
        return 0;
    case KIND_FORMAT:
        if (log_format_parse(text, field(cfg, s)) < 0)
            return fail(err, "must be text or json");
        return 0;
    case KIND_MODES:
        return set_modes(field(cfg, s), text, err);
    case KIND_BOOL:
        return set_bool(field(cfg, s), text, err);
    case KIND_AUTH:
        for (int i = 0; i < 3; i++) {
            if (strcmp(text, auth_names[i]) == 0) {
                *(int *)field(cfg, s) = i;
                return 0;
            }
        }
        return fail(err, "must be bearer, mj-api-secret or raw");
    case KIND_LISTEN:
        return set_listen(cfg, text, err);
    }
    return fail(err, "internal error: unknown setting kind");
}

/* Appends src to dst[*n..cap), control bytes shown as '?'. */
static void put(char *dst, size_t cap, size_t *n, const char *src, size_t len)
{
    for (size_t i = 0; i < len && *n + 1 < cap; i++) {
        unsigned char c = (unsigned char)src[i];

        dst[(*n)++] = c < 0x20 || c == 0x7f ? '?' : (char)c;
    }
    dst[*n] = '\0';
}

/*
 * Copies a URL with any password replaced by ***. Conservative on
 * malformed input: everything between "://" and the last '@' (after the
 * user name) counts as password, so no broken URL leaks one either.
 */
static void mask_url(const char *url, char *dst, size_t cap)
{
    const char *sep = strstr(url, "://");
    const char *start = sep != NULL ? sep + 3 : url;
    const char *at = NULL, *colon;
    size_t n = 0;

    if (!(strncasecmp(url, "unix://", 7) == 0 && start[0] == '/'))
        at = strrchr(start, '@');
    if (at == NULL) {
        put(dst, cap, &n, url, strlen(url));
        return;
    }
    colon = memchr(start, ':', (size_t)(at - start));
    put(dst, cap, &n, url, (size_t)((colon != NULL ? colon + 1 : start) - url));
    put(dst, cap, &n, "***", 3);
    put(dst, cap, &n, at, strlen(at));
}

/* err->value: how a rejected value is shown. Secrets never are. */
static void show_value(struct config_error *err, const struct setting *s,
                       const char *text)
{
    size_t n = 0;

    if (s->kind == KIND_SECRET)
        snprintf(err->value, sizeof(err->value), "(secret)");
    else if (text[0] == '\0')
        snprintf(err->value, sizeof(err->value), "\"\"");
    else if (s->kind == KIND_REDIS_URL || s->kind == KIND_BASE_URL ||
             s->kind == KIND_HOOK_URL)
        mask_url(text, err->value, sizeof(err->value));
    else
        put(err->value, sizeof(err->value), &n, text, strlen(text));
}

/* err->key (and file/line): the name the value was given under. */
static void blame(struct config_error *err, const struct setting *s,
                  const struct origin *o)
{
    switch (o->layer) {
    case LAYER_FILE:
        snprintf(err->key, sizeof(err->key), "%s", s->key);
        snprintf(err->file, sizeof(err->file), "%s", o->file);
        err->line = o->line;
        break;
    case LAYER_ENV:
        snprintf(err->key, sizeof(err->key), "%s", s->env);
        break;
    case LAYER_FLAG:
        snprintf(err->key, sizeof(err->key), "--%s", s->flag);
        break;
    case LAYER_DEFAULT:
        snprintf(err->key, sizeof(err->key), "%s", s->key);
        break;
    }
}

/* Applies text from a layer, recording the origin or naming it in err. */
static int apply_from(struct config *cfg, const struct setting *s,
                      const char *text, struct origin *origins,
                      const struct origin *o, struct config_error *err)
{
    if (apply_text(cfg, s, text, err) < 0) {
        blame(err, s, o);
        show_value(err, s, text);
        return -1;
    }
    origins[s - settings] = *o;
    return 0;
}

/* Joins items with "," (for showing a rejected file list). */
static char *join(char *const *items, size_t n)
{
    size_t len = 1;
    char *s;

    for (size_t i = 0; i < n; i++)
        len += strlen(items[i]) + 1;
    s = xmalloc(len);
    s[0] = '\0';
    for (size_t i = 0, off = 0; i < n; i++) {
        size_t l = strlen(items[i]);

        if (i > 0)
            s[off++] = ',';
        memcpy(s + off, items[i], l + 1);
        off += l;
    }
    return s;
}

static bool is_int_type(int type)
{
    return type == CONFIG_TYPE_INT || type == CONFIG_TYPE_INT64;
}

/* A libconfig list or array, as items (numbers printed in base 10). */
static int file_items(const config_setting_t *m, bool numbers, char ***out,
                      size_t *n, struct config_error *err)
{
    int len = config_setting_length(m);
    char **items = xcalloc((size_t)len + 1, sizeof(char *));

    for (int i = 0; i < len; i++) {
        const config_setting_t *e = config_setting_get_elem(m, (unsigned)i);
        int type = config_setting_type(e);
        char num[32];

        if (type == CONFIG_TYPE_STRING) {
            items[i] = xstrdup(config_setting_get_string(e));
        } else if (numbers && is_int_type(type)) {
            snprintf(num, sizeof(num), "%lld", config_setting_get_int64(e));
            items[i] = xstrdup(num);
        } else {
            free_strv(items, (size_t)i);
            return fail(err, numbers ? "expected a list of integers"
                                     : "expected a list of strings");
        }
    }
    *out = items;
    *n = (size_t)len;
    return 0;
}

/* Applies one file setting, copying its value out of libconfig. */
static int apply_file_setting(struct config *cfg, const struct setting *s,
                              const config_setting_t *m, struct origin *origins,
                              const struct origin *o, struct config_error *err)
{
    int type = config_setting_type(m);
    bool list = s->kind == KIND_QUEUES || s->kind == KIND_MS_LIST;
    bool number =
        s->kind == KIND_INT || s->kind == KIND_LONG || s->kind == KIND_SIZE;
    char num[32], **items = NULL, *shown;
    size_t n = 0;
    int rc;

    if (type == CONFIG_TYPE_STRING)
        return apply_from(cfg, s, config_setting_get_string(m), origins, o,
                          err);
    if (s->kind == KIND_BOOL && type == CONFIG_TYPE_BOOL)
        return apply_from(cfg, s, config_setting_get_bool(m) ? "true" : "false",
                          origins, o, err);
    if (s->kind == KIND_MODES &&
        (type == CONFIG_TYPE_ARRAY || type == CONFIG_TYPE_LIST)) {
        if (file_items(m, false, &items, &n, err) < 0) {
            blame(err, s, o);
            return -1;
        }
        shown = join(items, n);
        free_strv(items, n);
        rc = apply_from(cfg, s, shown, origins, o, err);
        free(shown);
        return rc;
    }
    if (number && is_int_type(type)) {
        snprintf(num, sizeof(num), "%lld", config_setting_get_int64(m));
        return apply_from(cfg, s, num, origins, o, err);
    }
    if (list && (type == CONFIG_TYPE_ARRAY || type == CONFIG_TYPE_LIST)) {
        if (file_items(m, s->kind == KIND_MS_LIST, &items, &n, err) < 0) {
            blame(err, s, o);
            return -1;
        }
        rc = apply_items(cfg, s, items, n, err);
        if (rc < 0) {
            blame(err, s, o);
            shown = join(items, n);
            show_value(err, s, shown);
            free(shown);
        } else {
            origins[s - settings] = *o;
        }
        free_strv(items, n);
        return rc;
    }
    blame(err, s, o);
    if (list || s->kind == KIND_MODES)
        return fail(err, "expected a list or a comma-separated string");
    if (s->kind == KIND_BOOL)
        return fail(err, "expected true or false");
    return fail(err, number ? "expected an integer" : "expected a string");
}

/* One setting of an `upstreams` entry, as text under its api.* key. */
struct spec_pair {
    const struct setting *s;
    char *text;
    char key[64]; /* as written: upstreams[1].limits.fast */
    struct origin o;
};

/*
 * One entry of the file's `upstreams` list. Its settings are kept as text
 * and applied in build_accounts(), once every layer is known, over the
 * final api.* values: an entry overrides only what it names.
 */
struct upstream_spec {
    char *name;
    char *key_env;
    char where[24]; /* "upstreams[1]" */
    struct origin o;
    struct spec_pair *pairs;
    size_t npairs;
};

struct upstream_specs {
    struct upstream_spec *v;
    size_t n;
    int listed; /* the file had an `upstreams` list */
};

static void specs_free(struct upstream_specs *specs)
{
    for (size_t i = 0; i < specs->n; i++) {
        struct upstream_spec *u = &specs->v[i];

        free(u->name);
        free(u->key_env);
        for (size_t j = 0; j < u->npairs; j++) {
            if (u->pairs[j].s->kind == KIND_SECRET)
                free_secret(u->pairs[j].text);
            else
                free(u->pairs[j].text);
        }
        free(u->pairs);
    }
    free(specs->v);
    memset(specs, 0, sizeof(*specs));
}

/* True for the api.* settings that describe one account. */
static bool is_account_setting(const struct setting *s)
{
    return s->offset >= OFF(api) &&
           s->offset < OFF(api) + sizeof(struct account_config);
}

/* An account name: 1-32 of A-Z a-z 0-9 . _ - (it goes into Redis keys,
 * metric labels and log lines). */
static int check_account_name(const char *name, struct config_error *err)
{
    size_t len = strlen(name);

    if (len == 0 || len > 32)
        return fail(err, "must be 1 to 32 characters");
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];

        if (!isalnum(c) && c != '.' && c != '_' && c != '-')
            return fail(err, "use only A-Z a-z 0-9 . _ - in account names");
    }
    return 0;
}

/* A libconfig scalar or list as text, as apply_text takes it. */
static char *setting_text(const config_setting_t *m)
{
    int type = config_setting_type(m);
    char num[32], **items;
    size_t n;
    struct config_error tmp;
    char *text;

    switch (type) {
    case CONFIG_TYPE_STRING:
        return xstrdup(config_setting_get_string(m));
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
        snprintf(num, sizeof(num), "%lld", config_setting_get_int64(m));
        return xstrdup(num);
    case CONFIG_TYPE_BOOL:
        return xstrdup(config_setting_get_bool(m) ? "true" : "false");
    case CONFIG_TYPE_ARRAY:
    case CONFIG_TYPE_LIST:
        if (file_items(m, false, &items, &n, &tmp) < 0)
            return NULL;
        text = join(items, n);
        free_strv(items, n);
        return text;
    default:
        return NULL;
    }
}

/* The members of one entry (or of its limits/routes groups). */
static int parse_spec_members(struct upstream_spec *u,
                              const config_setting_t *group, const char *sub,
                              const char *path, struct config_error *err)
{
    int len = config_setting_length(group);

    for (int i = 0; i < len; i++) {
        const config_setting_t *m = config_setting_get_elem(group, (unsigned)i);
        const char *src = config_setting_source_file(m);
        const char *name = config_setting_name(m);
        struct origin o = {.layer = LAYER_FILE};
        const struct setting *s;
        char rel[32], api_key[48];
        struct spec_pair *pair;
        char *text;

        snprintf(o.file, sizeof(o.file), "%s", src != NULL ? src : path);
        o.line = (int)config_setting_source_line(m);
        snprintf(rel, sizeof(rel), "%s%s%s", sub, sub[0] ? "." : "", name);
        snprintf(err->key, sizeof(err->key), "%s.%s", u->where, rel);
        snprintf(err->file, sizeof(err->file), "%s", o.file);
        err->line = o.line;
        if (sub[0] == '\0' &&
            (strcmp(name, "name") == 0 || strcmp(name, "key_env") == 0)) {
            if (config_setting_type(m) != CONFIG_TYPE_STRING)
                return fail(err, "expected a string");
            if (strcmp(name, "name") == 0) {
                if (check_account_name(config_setting_get_string(m), err) < 0)
                    return -1;
                free(u->name);
                u->name = xstrdup(config_setting_get_string(m));
            } else {
                if (config_setting_get_string(m)[0] == '\0')
                    return fail(err, "must not be empty");
                free(u->key_env);
                u->key_env = xstrdup(config_setting_get_string(m));
            }
            continue;
        }
        snprintf(api_key, sizeof(api_key), "api.%s", rel);
        s = find_setting(api_key);
        if (s == NULL && is_group_key(api_key) && config_setting_is_group(m)) {
            if (parse_spec_members(u, m, rel, path, err) < 0)
                return -1;
            continue;
        }
        if (s == NULL || !is_account_setting(s))
            return fail(err, is_group_key(api_key)
                                 ? "expected a group { ... }"
                                 : "unknown setting of an upstream account");
        text = setting_text(m);
        if (text == NULL)
            return fail(err, "expected a string, a number, true/false or "
                             "a list");
        u->pairs = xrealloc(u->pairs, (u->npairs + 1) * sizeof(*u->pairs));
        pair = &u->pairs[u->npairs++];
        memset(pair, 0, sizeof(*pair));
        pair->s = s;
        pair->text = text;
        pair->o = o;
        snprintf(pair->key, sizeof(pair->key), "%s.%s", u->where, rel);
    }
    memset(err, 0, sizeof(*err));
    return 0;
}

/* upstreams = ( { name = "a"; base_url = "..."; ... }, ... ); */
static int parse_upstreams(struct upstream_specs *specs,
                           const config_setting_t *list, const char *path,
                           const struct origin *o, struct config_error *err)
{
    int len = config_setting_length(list);

    specs_free(specs);
    specs->listed = 1;
    if (config_setting_type(list) != CONFIG_TYPE_LIST || len == 0) {
        snprintf(err->key, sizeof(err->key), "upstreams");
        snprintf(err->file, sizeof(err->file), "%s", o->file);
        err->line = o->line;
        return fail(err,
                    len == 0 && config_setting_type(list) == CONFIG_TYPE_LIST
                        ? "at least one account is required"
                        : "expected a list of groups: ( { name = ...; "
                          "base_url = ...; }, ... )");
    }
    if (len > MJQ_MAX_ACCOUNTS) {
        snprintf(err->key, sizeof(err->key), "upstreams");
        snprintf(err->file, sizeof(err->file), "%s", o->file);
        err->line = o->line;
        return fail(err, "at most %d accounts", MJQ_MAX_ACCOUNTS);
    }
    specs->v = xcalloc((size_t)len, sizeof(*specs->v));
    for (int i = 0; i < len; i++) {
        const config_setting_t *e = config_setting_get_elem(list, (unsigned)i);
        struct upstream_spec *u = &specs->v[specs->n++];

        snprintf(u->where, sizeof(u->where), "upstreams[%d]", i);
        u->o = *o;
        u->o.line = (int)config_setting_source_line(e);
        if (!config_setting_is_group(e)) {
            snprintf(err->key, sizeof(err->key), "%s", u->where);
            snprintf(err->file, sizeof(err->file), "%s", o->file);
            err->line = u->o.line;
            return fail(err, "expected a group { name = ...; ... }");
        }
        if (parse_spec_members(u, e, "", path, err) < 0)
            return -1;
        if (u->name == NULL) {
            snprintf(err->key, sizeof(err->key), "%s.name", u->where);
            snprintf(err->file, sizeof(err->file), "%s", o->file);
            err->line = u->o.line;
            return fail(err, "every upstream account needs a name");
        }
        for (size_t j = 0; j + 1 < specs->n; j++) {
            if (strcmp(specs->v[j].name, u->name) == 0) {
                snprintf(err->key, sizeof(err->key), "%s.name", u->where);
                snprintf(err->value, sizeof(err->value), "%s", u->name);
                snprintf(err->file, sizeof(err->file), "%s", o->file);
                err->line = u->o.line;
                return fail(err, "two upstream accounts are named \"%s\"",
                            u->name);
            }
        }
    }
    return 0;
}

/* Walks a group of the file; any key not in the table is an error. */
static int apply_group(struct config *cfg, const config_setting_t *group,
                       const char *prefix, const char *path,
                       struct origin *origins, struct upstream_specs *specs,
                       struct config_error *err)
{
    int len = config_setting_length(group);

    for (int i = 0; i < len; i++) {
        const config_setting_t *m = config_setting_get_elem(group, (unsigned)i);
        const char *src = config_setting_source_file(m);
        const struct setting *s;
        struct origin o = {.layer = LAYER_FILE};
        char key[sizeof(err->key)]; /* longer than any known key */

        snprintf(key, sizeof(key), "%s%s%s", prefix, prefix[0] ? "." : "",
                 config_setting_name(m));
        snprintf(o.file, sizeof(o.file), "%s", src != NULL ? src : path);
        o.line = (int)config_setting_source_line(m);
        s = find_setting(key);
        if (s != NULL) {
            if (apply_file_setting(cfg, s, m, origins, &o, err) < 0)
                return -1;
        } else if (strcmp(key, "upstreams") == 0) {
            if (parse_upstreams(specs, m, path, &o, err) < 0)
                return -1;
        } else if (is_group_key(key) && config_setting_is_group(m)) {
            if (apply_group(cfg, m, key, path, origins, specs, err) < 0)
                return -1;
        } else {
            snprintf(err->key, sizeof(err->key), "%s", key);
            snprintf(err->file, sizeof(err->file), "%s", o.file);
            err->line = o.line;
            return fail(err, is_group_key(key) ? "expected a group { ... }"
                                               : "unknown setting");
        }
    }
    return 0;
}

/* Checks one bare token of the file (see check_wide_ints). */
static int check_token(const char *tok, size_t len, struct config_error *err)
{
    char buf[64];
    const char *digits = tok + (tok[0] == '-' || tok[0] == '+');
    bool hex = digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'X');
    const char *accept = hex ? "0123456789abcdefABCDEF" : "0123456789";
    char *end;
    long long v;

    if (hex)
        digits += 2;
    if (len >= sizeof(buf) || digits == tok + len ||
        strspn(digits, accept) != (size_t)(tok + len - digits))
        return 0; /* a float, a name, an L-suffixed integer... */
    memcpy(buf, tok, len);
    buf[len] = '\0';
    errno = 0;
    v = strtoll(buf, &end, 0);
    if (errno != ERANGE && v >= INT_MIN && v <= INT_MAX)
        return 0;
    return fail(err, "integer %s does not fit in 32 bits; write it %sL", buf,
                buf);
}

/*
 * libconfig 1.5 silently wraps an integer literal that does not fit in 32
 * bits unless it has the L suffix (5000000000 reads as 705032704). Such
 * literals are found here, skipping comments and strings, and refused.
 */
static int check_wide_ints(const char *text, struct config_error *err)
{
    static const char tokch[] = "0123456789abcdefghijklmnopqrstuvwxyz"
                                "ABCDEFGHIJKLMNOPQRSTUVWXYZ_*.+-";
    const char *p = text, *e;
    int line = 1;

    while (*p != '\0') {
        size_t len = 1;

        if (*p == '#' || (p[0] == '/' && p[1] == '/')) {
            len = strcspn(p, "\n");
        } else if (p[0] == '/' && p[1] == '*') {
            e = strstr(p + 2, "*/");
            len = e != NULL ? (size_t)(e + 2 - p) : strlen(p);
        } else if (*p == '"') {
            while (p[len] != '\0' && p[len] != '"')
                len += p[len] == '\\' && p[len + 1] != '\0' ? 2 : 1;
            len += p[len] == '"';
        } else if (strchr(tokch, *p) != NULL) {
            len = strspn(p, tokch);
            if (check_token(p, len, err) < 0) {
                err->line = line;
                return -1;
            }
        }
        for (e = p; e < p + len; e++)
            line += *e == '\n';
        p += len;
    }
    return 0;
}

/* Reads a whole regular file into a new string. */
static char *read_text(const char *path, struct config_error *err)
{
    struct stat st;
    size_t len = 0, cap = 4096;
    char *text;
    FILE *f = fopen(path, "re");

    if (f == NULL) {
        fail(err, "cannot read the config file: %s", strerror(errno));
        return NULL;
    }
    if (fstat(fileno(f), &st) < 0 || !S_ISREG(st.st_mode)) {
        fail(err, "the config file is not a regular file");
        fclose(f);
        return NULL;
    }
    text = xmalloc(cap);
    for (;;) {
        len += fread(text + len, 1, cap - len - 1, f);
        if (len < cap - 1)
            break;
        cap *= 2;
        text = xrealloc(text, cap);
    }
    if (ferror(f)) {
        fail(err, "cannot read the config file: %s", strerror(errno));
        free(text);
        fclose(f);
        return NULL;
    }
    text[len] = '\0';
    fclose(f);
    return text;
}

/*
 * The file layer. The text is read once, checked for integers libconfig
 * would misread, then parsed; libconfig's strings are copied out by
 * apply_group() before config_destroy().
 */
/* Reads and parses the file at path into lc (config_destroy() it after
 * a 0). Returns 0, or -1 with err naming the file (and line). */
static int parse_file(config_t *lc, const char *path, struct config_error *err)
{
    char *text;
    int rc;

    snprintf(err->file, sizeof(err->file), "%s", path);
    text = read_text(path, err);
    if (text == NULL || check_wide_ints(text, err) < 0) {
        free(text);
        return -1;
    }
    memset(err, 0, sizeof(*err));
    config_init(lc);
    rc = config_read_string(lc, text);
    free(text);
    if (rc != CONFIG_TRUE) {
        const char *etext = config_error_text(lc);

        snprintf(err->file, sizeof(err->file), "%s", path);
        err->line = config_error_line(lc);
        fail(err, "%s", etext != NULL ? etext : "cannot parse the file");
        config_destroy(lc);
        return -1;
    }
    return 0;
}

static int load_file(struct config *cfg, const char *path,
                     struct origin *origins, struct upstream_specs *specs,
                     struct config_error *err)
{
    config_t lc;
    int rc;

    if (parse_file(&lc, path, err) < 0)
        return -1;
    rc = apply_group(cfg, config_root_setting(&lc), "", path, origins, specs,
                     err);
    config_destroy(&lc);
    return rc;
}

int config_file_setting(struct config *cfg, const char *path, const char *key,
                        struct config_error *err)
{
    config_t lc;
    config_setting_t *s;
    const char *value;
    int rc = 1;

    if (parse_file(&lc, path, err) < 0)
        return -1;
    s = config_lookup(&lc, key);
    if (s == NULL) {
        config_destroy(&lc);
        return 0;
    }
    value = config_setting_get_string(s);
    if (value == NULL) {
        memset(err, 0, sizeof(*err));
        snprintf(err->key, sizeof(err->key), "%s", key);
        fail(err, "must be a string");
        rc = -1;
    } else if (config_set(cfg, key, value, err) < 0) {
        rc = -1;
    }
    if (rc < 0) {
        snprintf(err->file, sizeof(err->file), "%s", path);
        err->line = config_setting_source_line(s);
    }
    config_destroy(&lc);
    return rc;
}

static int load_env(struct config *cfg, struct origin *origins,
                    struct config_error *err)
{
    const struct origin o = {.layer = LAYER_ENV};

    for (size_t i = 0; i < NSETTINGS; i++) {
        const char *v = getenv(settings[i].env);

        if (v != NULL && apply_from(cfg, &settings[i], v, origins, &o, err) < 0)
            return -1;
    }
    return 0;
}

static int load_flags(struct config *cfg, char *const *flags, size_t nflags,
                      struct origin *origins, struct config_error *err)
{
    const struct origin o = {.layer = LAYER_FLAG};

    for (size_t i = 0; i < nflags; i++) {
        const char *eq = strchr(flags[i], '=');
        const struct setting *s;
        char key[64];

        if (eq == NULL || (size_t)(eq - flags[i]) >= sizeof(key)) {
            snprintf(err->key, sizeof(err->key), "%.*s", 40, flags[i]);
            return fail(err, "expected key=value");
        }
        memcpy(key, flags[i], (size_t)(eq - flags[i]));
        key[eq - flags[i]] = '\0';
        s = find_setting(key);
        if (s == NULL) {
            snprintf(err->key, sizeof(err->key), "%s", key);
            return fail(err, "unknown setting");
        }
        if (s->flag == NULL) {
            snprintf(err->key, sizeof(err->key), "%s", key);
            show_value(err, s, eq + 1);
            return fail(err,
                        "cannot be given on the command line; use %s "
                        "or the file",
                        s->env);
        }
        if (apply_from(cfg, s, eq + 1, origins, &o, err) < 0)
            return -1;
    }
    return 0;
}

/*
 * Checks a pair of settings that must satisfy `ok`: the one set on the
 * higher layer (the one most recently changed) takes the blame.
 */
static int check_pair(bool ok, const char *lo_key, const char *hi_key,
                      const char *rule, long lo, long hi,
                      const struct origin *origins, struct config_error *err)
{
    const struct setting *ls = find_setting(lo_key);
    const struct setting *hs = find_setting(hi_key);
    const struct origin *lo_o = &origins[ls - settings];
    const struct origin *hi_o = &origins[hs - settings];
    char num[32];

    if (ok)
        return 0;
    if (lo_o->layer > hi_o->layer) {
        blame(err, ls, lo_o);
        snprintf(num, sizeof(num), "%ld", lo);
        show_value(err, ls, num);
        return fail(err, "must be %s %s (%ld)",
                    strcmp(rule, ">=") == 0 ? "<=" : "<", hs->key, hi);
    }
    blame(err, hs, hi_o);
    snprintf(num, sizeof(num), "%ld", hi);
    show_value(err, hs, num);
    return fail(err, "must be %s %s (%ld)", rule, ls->key, lo);
}

/*
 * Cross-field rules, then the key file. api.key and api.key_file on the
 * same layer conflict; on different layers the higher one wins.
 */
static int finish(struct config *cfg, const struct origin *origins,
                  struct config_error *err)
{
    const struct setting *ks = find_kind(KIND_SECRET);
    const struct setting *fs = find_kind(KIND_KEY_FILE);
    const struct origin *ko = &origins[ks - settings];
    const struct origin *fo = &origins[fs - settings];
    char *key = NULL;

    if (check_pair(cfg->retry_max_ms >= cfg->retry_base_ms,
                   "worker.retry_base_ms", "worker.retry_max_ms", ">=",
                   cfg->retry_base_ms, cfg->retry_max_ms, origins, err) < 0)
        return -1;
    if (check_pair(cfg->heartbeat_ttl_ms > cfg->heartbeat_ms,
                   "worker.heartbeat_ms", "worker.heartbeat_ttl_ms", ">",
                   cfg->heartbeat_ms, cfg->heartbeat_ttl_ms, origins, err) < 0)
        return -1;
    if (cfg->api.key != NULL && cfg->api.key_file != NULL) {
        if (ko->layer == fo->layer) {
            blame(err, fs, fo);
            show_value(err, fs, cfg->api.key_file);
            return fail(err, "set only one of api.key and api.key_file");
        }
        if (ko->layer > fo->layer) {
            free(cfg->api.key_file);
            cfg->api.key_file = NULL;
        } else {
            free_secret(cfg->api.key);
            cfg->api.key = NULL;
        }
    }
    if (cfg->api.key_file != NULL) {
        if (read_key_file(cfg->api.key_file, &key, err) < 0) {
            blame(err, fs, fo);
            show_value(err, fs, cfg->api.key_file);
            return -1;
        }
        cfg->api.key = key;
    }
    return 0;
}

static void account_free(struct account_config *a)
{
    free(a->name);
    free(a->base_url);
    free_secret(a->key);
    free(a->key_file);
    free(a->key_env);
    for (int i = 0; i < MODE_COUNT; i++)
        free(a->routes[i]);
    memset(a, 0, sizeof(*a));
}

static char *dup_or_null(const char *s)
{
    return s != NULL ? xstrdup(s) : NULL;
}

static void account_copy(struct account_config *dst,
                         const struct account_config *src)
{
    *dst = *src;
    dst->name = dup_or_null(src->name);
    dst->base_url = dup_or_null(src->base_url);
    dst->key = dup_or_null(src->key);
    dst->key_file = dup_or_null(src->key_file);
    dst->key_env = dup_or_null(src->key_env);
    for (int i = 0; i < MODE_COUNT; i++)
        dst->routes[i] = dup_or_null(src->routes[i]);
}

static int spec_fail(struct config_error *err, const char *key,
                     const struct origin *o, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int spec_fail(struct config_error *err, const char *key,
                     const struct origin *o, const char *fmt, ...)
{
    va_list ap;

    snprintf(err->key, sizeof(err->key), "%s", key);
    snprintf(err->file, sizeof(err->file), "%s", o->file);
    err->line = o->line;
    va_start(ap, fmt);
    vsnprintf(err->reason, sizeof(err->reason), fmt, ap);
    va_end(ap);
    return -1;
}

/* The key of one entry: inherited from api.*, or its own key, key_file or
 * key_env (at most one of them). */
static int spec_key(struct account_config *a, const struct upstream_spec *u,
                    struct config_error *err)
{
    const struct spec_pair *given = NULL;
    int sources = u->key_env != NULL;
    char *key = NULL;

    for (size_t j = 0; j < u->npairs; j++) {
        if (u->pairs[j].s->kind == KIND_SECRET ||
            u->pairs[j].s->kind == KIND_KEY_FILE) {
            given = &u->pairs[j];
            sources++;
        }
    }
    if (sources > 1)
        return spec_fail(err, u->where, &u->o,
                         "set only one of key, key_file and key_env");
    if (given != NULL && given->s->kind == KIND_SECRET) {
        free(a->key_file);
        a->key_file = NULL;
    } else if (given != NULL) {
        if (read_key_file(a->key_file, &key, err) < 0) {
            char reason[sizeof(err->reason)];

            memcpy(reason, err->reason, sizeof(reason));
            spec_fail(err, given->key, &given->o, "%s", reason);
            snprintf(err->value, sizeof(err->value), "%.200s", a->key_file);
            return -1;
        }
        free_secret(a->key);
        a->key = key;
    } else if (u->key_env != NULL) {
        const char *v = getenv(u->key_env);
        char key_name[80];

        snprintf(key_name, sizeof(key_name), "%s.key_env", u->where);
        if (v == NULL || v[0] == '\0')
            return spec_fail(err, key_name, &u->o,
                             "environment variable %.40s is not set",
                             u->key_env);
        if (check_key(v, err) < 0) {
            char reason[sizeof(err->reason)];

            memcpy(reason, err->reason, sizeof(reason));
            return spec_fail(err, key_name, &u->o, "the key in %.40s %s",
                             u->key_env, reason);
        }
        free_secret(a->key);
        a->key = xstrdup(v);
        free(a->key_file);
        a->key_file = NULL;
        a->key_env = xstrdup(u->key_env);
    }
    return 0;
}

/*
 * The accounts workers use: each `upstreams` entry applied over the final
 * api.* values, or, without the list, one copy of api.* named "default".
 */
static int build_accounts(struct config *cfg, struct upstream_specs *specs,
                          struct config_error *err)
{
    if (!specs->listed) {
        cfg->accounts = xcalloc(1, sizeof(*cfg->accounts));
        account_copy(&cfg->accounts[0], &cfg->api);
        cfg->naccounts = 1;
        return 0;
    }
    cfg->accounts = xcalloc(specs->n, sizeof(*cfg->accounts));
    for (size_t i = 0; i < specs->n; i++) {
        const struct upstream_spec *u = &specs->v[i];
        struct config scratch;

        memset(&scratch, 0, sizeof(scratch));
        account_copy(&scratch.api, &cfg->api);
        free(scratch.api.name);
        scratch.api.name = xstrdup(u->name);
        for (size_t j = 0; j < u->npairs; j++) {
            const struct spec_pair *pair = &u->pairs[j];

            if (apply_text(&scratch, pair->s, pair->text, err) < 0) {
                char reason[sizeof(err->reason)];

                memcpy(reason, err->reason, sizeof(reason));
                spec_fail(err, pair->key, &pair->o, "%s", reason);
                show_value(err, pair->s, pair->text);
                account_free(&scratch.api);
                return -1;
            }
        }
        if (spec_key(&scratch.api, u, err) < 0) {
            account_free(&scratch.api);
            return -1;
        }
        cfg->accounts[cfg->naccounts++] = scratch.api;
    }
    return 0;
}

void config_defaults(struct config *cfg)
{
    struct config_error err = {0};

    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < NSETTINGS; i++) {
        if (settings[i].def != NULL &&
            apply_text(cfg, &settings[i], settings[i].def, &err) < 0) {
            /* A bad table entry: a bug, caught by the unit tests. */
            log_error("config: bad default for %s: %s", settings[i].key,
                      err.reason);
            abort();
        }
    }
    cfg->api.name = xstrdup("default");
}

int config_load(struct config *cfg, const char *path, char *const *flags,
                size_t nflags, struct config_error *err)
{
    struct origin origins[NSETTINGS];
    struct upstream_specs specs = {0};
    int rc = -1;

    memset(origins, 0, sizeof(origins));
    memset(err, 0, sizeof(*err));
    config_defaults(cfg);
    if (path == NULL) {
        path = getenv("MJQ_CONFIG");
        if (path != NULL && path[0] == '\0')
            path = NULL;
    }
    if (path != NULL) {
        cfg->config_path = xstrdup(path);
        if (load_file(cfg, path, origins, &specs, err) < 0)
            goto out;
    }
    if (load_env(cfg, origins, err) < 0 ||
        load_flags(cfg, flags, nflags, origins, err) < 0 ||
        finish(cfg, origins, err) < 0)
        goto out;
    rc = build_accounts(cfg, &specs, err);
out:
    specs_free(&specs);
    return rc;
}

int config_set(struct config *cfg, const char *key, const char *value,
               struct config_error *err)
{
    const struct setting *s = find_setting(key);
    char *secret = NULL;

    memset(err, 0, sizeof(*err));
    snprintf(err->key, sizeof(err->key), "%s", key);
    if (s == NULL)
        return fail(err, "unknown setting");
    if (s->kind == KIND_KEY_FILE && value[0] != '\0' &&
        read_key_file(value, &secret, err) < 0) {
        show_value(err, s, value);
        return -1;
    }
    if (apply_text(cfg, s, value, err) < 0) {
        free_secret(secret);
        show_value(err, s, value);
        return -1;
    }
    memset(err, 0, sizeof(*err));
    if (s->kind == KIND_KEY_FILE) {
        free_secret(cfg->api.key);
        cfg->api.key = secret;
    } else if (s->kind == KIND_SECRET) {
        free(cfg->api.key_file);
        cfg->api.key_file = NULL;
    }
    /* Without an `upstreams` list the one account is api.* itself. */
    if (is_account_setting(s) && cfg->naccounts == 1 &&
        strcmp(cfg->accounts[0].name, "default") == 0) {
        account_free(&cfg->accounts[0]);
        account_copy(&cfg->accounts[0], &cfg->api);
    }
    return 0;
}

const char *config_flag_key(const char *flag)
{
    for (size_t i = 0; i < NSETTINGS; i++) {
        if (settings[i].flag != NULL && strcmp(settings[i].flag, flag) == 0)
            return settings[i].key;
    }
    return NULL;
}

static const char *arg_name(enum kind kind)
{
    switch (kind) {
    case KIND_REDIS_URL:
    case KIND_BASE_URL:
    case KIND_HOOK_URL:
        return "URL";
    case KIND_QUEUES:
        return "Q1,Q2";
    case KIND_MS_LIST:
        return "MS,MS";
    case KIND_KEY_FILE:
        return "FILE";
    case KIND_ROUTE:
        return "PATH";
    case KIND_SIZE:
        return "BYTES";
    case KIND_INT:
    case KIND_LONG:
        return "N";
    case KIND_LEVEL:
        return "LEVEL";
    case KIND_FORMAT:
        return "FMT";
    case KIND_MODES:
        return "M1,M2";
    case KIND_BOOL:
        return "BOOL";
    case KIND_AUTH:
        return "STYLE";
    case KIND_LISTEN:
        return "HOST:PORT";
    case KIND_PREFIX:
    case KIND_SECRET:
        break;
    }
    return "STR";
}

void config_usage(FILE *out)
{
    fprintf(out, "Settings: flag, environment variable, file key; meaning. "
                 "Flags beat the\nenvironment, which beats the file "
                 "(--config FILE, or MJQ_CONFIG):\n");
    for (size_t i = 0; i < NSETTINGS; i++) {
        const struct setting *s = &settings[i];
        char flag[48];

        if (s->flag != NULL)
            snprintf(flag, sizeof(flag), "--%s %s", s->flag, arg_name(s->kind));
        else
            snprintf(flag, sizeof(flag), "(no flag)");
        fprintf(out, "  %-28s %-28s %s\n", flag, s->env, s->key);
        fprintf(out, "      %s (default: %s)\n", s->meaning,
                s->def == NULL      ? "none"
                : s->def[0] == '\0' ? "\"\""
                                    : s->def);
    }
}

void config_error_format(const struct config_error *err, char *buf, size_t len)
{
    char where[300] = "";

    if (err->file[0] != '\0' && err->line > 0)
        snprintf(where, sizeof(where), " (%s:%d)", err->file, err->line);
    else if (err->file[0] != '\0')
        snprintf(where, sizeof(where), " (%s)", err->file);
    snprintf(buf, len, "config: %s%s%s%s%s%s", err->key,
             err->key[0] != '\0' && err->value[0] != '\0' ? "=" : "",
             err->key[0] != '\0' ? err->value : "",
             err->key[0] != '\0' ? ": " : "", err->reason, where);
}

void config_free(struct config *cfg)
{
    if (cfg == NULL)
        return;
    free(cfg->config_path);
    free_secret(cfg->redis_url);
    free(cfg->redis_host);
    free(cfg->redis_unix_path);
    free(cfg->redis_username);
    free_secret(cfg->redis_password);
    free(cfg->prefix);
    free_strv(cfg->queues, cfg->nqueues);
    account_free(&cfg->api);
    for (size_t i = 0; i < cfg->naccounts; i++)
        account_free(&cfg->accounts[i]);
    free(cfg->accounts);
    free(cfg->notify_hook);
    free(cfg->poll_schedule_ms);
    free(cfg->admin_listen);
    free(cfg->admin_host);
    memset(cfg, 0, sizeof(*cfg));
}

/* Prints a string setting: (none) for NULL, "" for empty. */
static void dump_str(FILE *out, const char *s)
{
    if (s == NULL)
        fputs("(none)", out);
    else if (s[0] == '\0')
        fputs("\"\"", out);
    else
        fputs(s, out);
}

static void dump_modes(FILE *out, unsigned modes)
{
    const char *sep = "";

    for (int m = 0; m < MODE_COUNT; m++) {
        if (modes & (1u << m)) {
            fprintf(out, "%s%s", sep, mode_names[m]);
            sep = ",";
        }
    }
}

void config_dump_to(const struct config *cfg, FILE *out)
{
    for (size_t i = 0; i < NSETTINGS; i++) {
        const struct setting *s = &settings[i];
        const void *f = cfield(cfg, s);
        char masked[512];

        fprintf(out, "%s = ", s->key);
        switch (s->kind) {
        case KIND_REDIS_URL:
            if (cfg->redis_url != NULL)
                mask_url(cfg->redis_url, masked, sizeof(masked));
            dump_str(out, cfg->redis_url != NULL ? masked : NULL);
            break;
        case KIND_QUEUES:
            for (size_t j = 0; j < cfg->nqueues; j++)
                fprintf(out, "%s%s", j > 0 ? "," : "", cfg->queues[j]);
            break;
        case KIND_MS_LIST:
            for (size_t j = 0; j < cfg->npoll_schedule; j++)
                fprintf(out, "%s%ld", j > 0 ? "," : "",
                        cfg->poll_schedule_ms[j]);
            break;
        case KIND_SECRET:
            fputs(*(char *const *)f != NULL ? "(set)" : "(unset)", out);
            break;
        case KIND_PREFIX:
        case KIND_BASE_URL:
        case KIND_HOOK_URL:
        case KIND_KEY_FILE:
        case KIND_ROUTE:
        case KIND_LISTEN:
            dump_str(out, *(char *const *)f);
            break;
        case KIND_INT:
            fprintf(out, "%d", *(const int *)f);
            break;
        case KIND_LONG:
        case KIND_SIZE:
            fprintf(out, "%ld", *(const long *)f);
            break;
        case KIND_LEVEL:
            fputs(level_names[cfg->log_level], out);
            break;
        case KIND_FORMAT:
            fputs(format_names[cfg->log_format], out);
            break;
        case KIND_MODES:
            dump_modes(out, *(const unsigned *)f);
            break;
        case KIND_BOOL:
            fputs(*(const int *)f ? "true" : "false", out);
            break;
        case KIND_AUTH:
            fputs(auth_names[*(const int *)f], out);
            break;
        }
        fputc('\n', out);
    }
    if (cfg->naccounts == 1 && strcmp(cfg->accounts[0].name, "default") == 0)
        return; /* the api.* settings above are the only account */
    for (size_t i = 0; i < cfg->naccounts; i++) {
        const struct account_config *a = &cfg->accounts[i];

        fprintf(out, "upstreams.%s = %s key %s, modes ", a->name, a->base_url,
                a->key != NULL ? "(set)" : "(unset)");
        dump_modes(out, a->modes);
        fprintf(out, ", max_in_flight %d, limits", a->max_in_flight);
        for (int m = 0; m < MODE_COUNT; m++)
            fprintf(out, " %s=%d", mode_names[m], a->mode_limit[m]);
        fprintf(out, ", batch_fetch %s, min_poll_interval_ms %ld\n",
                a->batch_fetch ? "true" : "false", a->min_poll_interval_ms);
    }
}

void config_dump(const struct config *cfg)
{
    config_dump_to(cfg, stdout);
}
