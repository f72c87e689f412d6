#ifndef MJQ_CONFIG_H
#define MJQ_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#include "log.h"

/*
 * mjq's configuration: embedded defaults, overridden by the libconfig file
 * (MJQ_CONFIG or --config), overridden by MJQ_* environment variables,
 * overridden by command-line flags. Every string is owned by the struct
 * (copied out of libconfig at once) and freed by config_free().
 *
 * Secrets (api_key, redis_password) are held here and nowhere else; they
 * never appear in a config_error, a log line or config_dump().
 */

/* Exit code for "fatal configuration": the supervisor never respawns it. */
#define MJQ_EXIT_CONFIG 78

/* Most upstream accounts (entries of `upstreams`). */
#define MJQ_MAX_ACCOUNTS 16

/* How an account's key is sent: relays and new-api take a Bearer token;
 * a self-hosted novicezk proxy checks mj-api-secret; a self-hosted trueai
 * proxy compares the raw Authorization value. */
enum auth_style {
    AUTH_BEARER, /* Authorization: Bearer <key> */
    AUTH_SECRET, /* mj-api-secret: <key> */
    AUTH_RAW,    /* Authorization: <key> */
};

/* Speed modes; MODE_DEFAULT uses the plain /mj route. */
enum mode {
    MODE_DEFAULT,
    MODE_FAST,
    MODE_RELAX,
    MODE_TURBO,
    MODE_COUNT,
};

/*
 * One upstream account: where its MJ API is, how mjq authenticates, which
 * speed modes it serves and how much of it mjq may use at once. The api.*
 * settings describe the account "default" and are also the defaults of
 * every entry of the file's `upstreams` list.
 */
struct account_config {
    char *name;                 /* "default", or the entry's name */
    char *base_url;             /* e.g. http://127.0.0.1:8080 (no slash) */
    char *key;                  /* secret; NULL sends no Authorization */
    char *key_file;             /* where key was read from, or NULL */
    char *key_env;              /* upstreams: variable holding the key */
    int auth;                   /* enum auth_style: how the key is sent */
    char *routes[MODE_COUNT];   /* "", "/mj-fast", "/mj-relax", ... */
    long timeout_ms;            /* whole HTTP request, default 30000 */
    long connect_timeout_ms;    /* TCP/TLS connect, default 5000 */
    unsigned modes;             /* bit (1u << mode) per mode served */
    int max_in_flight;          /* jobs in flight upstream, all modes,
                                 * across the deployment; 0: no limit */
    int mode_limit[MODE_COUNT]; /* the same per mode; 0: no limit */
    int batch_fetch;            /* poll with list-by-condition */
    int batch_size;             /* task ids per list-by-condition */
    long batch_window_ms;       /* a due poll waits this long for others */
    long min_poll_interval_ms;  /* never poll one task faster than this */
};

struct config {
    char *config_path; /* file that was read, NULL if none */

    /* redis */
    char *redis_url;       /* as given, password masked by config_dump */
    char *redis_host;      /* NULL when redis_unix_path is set */
    int redis_port;        /* default 6379 */
    char *redis_unix_path; /* unix:///path, else NULL */
    char *redis_username;  /* ACL user (redis://user:pass@), or NULL */
    char *redis_password;  /* secret; NULL if none */
    int redis_db;          /* SELECT index, default 0 */
    char *prefix;          /* key prefix, default "mjq:" */

    /* queues, strict priority: queues[0] first */
    char **queues;
    size_t nqueues;

    /* upstream MJ API */
    struct account_config api;       /* the api.* settings */
    struct account_config *accounts; /* what workers use: the `upstreams`
                                      * entries, or one copy of api named
                                      * "default"; set by config_load */
    size_t naccounts;
    char *notify_hook;      /* set as notifyHook on submits, or NULL */
    int breaker_failures;   /* consecutive transport errors or 5xx that
                             * pause an account's submits, default 5 */
    long breaker_open_ms;   /* first pause; doubles per failed probe */
    long probe_interval_ms; /* probe period of an account out of
                             * rotation (key rejected, out of quota) */

    /* worker */
    int concurrency;        /* jobs in flight per worker, default 100 */
    long *poll_schedule_ms; /* progressive poll delays; last repeats */
    size_t npoll_schedule;
    long mode_timeout_s[MODE_COUNT]; /* deadline of a job that sets none,
                                      * per mode: no mode 600 (the
                                      * worker.job_timeout_s key), fast
                                      * 600, relax 3600, turbo 600 */
    long task_owner_ttl_s;           /* how long task id -> account is kept for
                                      * follow-ups, default 30 days */
    long dedup_window_s;             /* finished-id memory, default 86400 */
    long results_maxlen;             /* XADD MAXLEN ~ for results, 1000000 */
    long events_maxlen;              /* XADD MAXLEN ~ for events, 100000 */
    long max_job_bytes;              /* larger payloads are INVALID, 32 MiB */
    int submit_max_attempts;         /* transient submit failures, default 8 */
    long retry_base_ms;              /* first retry delay, default 1000 */
    long retry_max_ms;               /* retry delay cap, default 30000 */
    int lost_after_not_found;        /* not-found fetches before "lost", 3 */
    int max_recoveries;              /* take-overs from dead workers before the
                                      * job fails "recovered N times", 3 */
    long heartbeat_ms;               /* heartbeat period, default 2000 */
    long heartbeat_ttl_ms;           /* heartbeat key TTL, default 6000 */
    long shutdown_timeout_s;         /* drain budget on SIGTERM, default 10 */

    /* supervisor */
    int workers;            /* worker processes under `mjq run`, 1 */
    long sweep_interval_ms; /* recovery sweep period (one sweep per period
                             * across the deployment), default 2000 */

    /* admin HTTP endpoint of `mjq run` */
    char *admin_listen; /* "HOST:PORT" as given; NULL: disabled */
    char *admin_host;   /* HOST without [] brackets; NULL when disabled */
    int admin_port;     /* 1..65535 */

    /* logging */
    enum log_level log_level;   /* default info */
    enum log_format log_format; /* default text */
};

/*
 * Precise reason for a rejected configuration. key names the source that
 * was used: the file key (with file and line), the environment variable, or
 * "--flag". key is empty for errors about the whole file (cannot read it,
 * syntax error). value is for display: "(secret)" for api.key, passwords in
 * URLs as ***, an empty value as "", control characters as '?'; it is empty
 * when no value applies (unknown setting, wrong libconfig type).
 */
struct config_error {
    char key[64];     /* file key, env var or flag that was wrong */
    char value[256];  /* offending value, "(secret)" for secrets */
    char reason[256]; /* why it is wrong */
    char file[256];   /* config file, if the error is in it */
    int line;         /* line in that file, 0 if not applicable */
};

/*
 * Fills cfg with embedded defaults. Never fails. Whatever cfg held is
 * overwritten, not freed. The caller owns cfg and must config_free() it.
 */
void config_defaults(struct config *cfg);

/*
 * Loads the whole configuration in precedence order: defaults, the file
 * (path, or MJQ_CONFIG if path is NULL, or none), MJQ_* environment, then
 * the flag overrides in `flags` (an array of "key=value" settings given on
 * the command line, nflags long; keys as in the file, e.g.
 * "worker.concurrency=50"). Validates everything at the end: the
 * cross-field rules, then api.key vs api.key_file (both on one layer is an
 * error; on different layers the higher wins), then reads the key file.
 * cfg is overwritten first (config_defaults), not freed.
 * Returns 0, or -1 with err filled (key, value, reason). On error cfg is
 * still safe to config_free().
 */
int config_load(struct config *cfg, const char *path, char *const *flags,
                size_t nflags, struct config_error *err);

/*
 * Applies one setting by file key ("worker.concurrency") with the same
 * parsing and checks as the file and the environment. "api.key_file" is
 * read at once and replaces api_key; "api.key" clears api_key_file.
 * Cross-field rules are config_load's. Returns 0 or -1 with err filled;
 * on error cfg is unchanged.
 */
int config_set(struct config *cfg, const char *key, const char *value,
               struct config_error *err);

/*
 * Applies only the setting `key` ("admin.listen") of the config file at
 * path, parsed and checked as config_load() would, ignoring the rest of
 * the file: for a tool that needs one value even when other settings are
 * wrong. Returns 1 when applied, 0 when the file does not set it, or -1
 * with err filled (the file cannot be read or parsed, or the value is
 * invalid). String settings only.
 */
int config_file_setting(struct config *cfg, const char *path, const char *key,
                        struct config_error *err);

/*
 * Maps a long flag name, without the leading dashes ("concurrency",
 * "redis-url"), to its file key ("worker.concurrency"). Returns a static
 * string, or NULL for an unknown flag.
 */
const char *config_flag_key(const char *flag);

/*
 * Prints two lines per setting: flag, environment variable and file key,
 * then default and meaning (under 100 columns). For `--help` of the
 * commands that take config.
 */
void config_usage(FILE *out);

/*
 * Formats err as one line: "config: <key>=<value>: <reason>", then
 * " (<file>:<line>)" for an error in the file. "=<value>" is left out when
 * value is empty, "<key>=<value>: " when key is.
 */
void config_error_format(const struct config_error *err, char *buf, size_t len);

/* Frees every string the struct owns. NULL-safe; cfg may be reused. */
void config_free(struct config *cfg);

/* Prints the effective configuration, secrets masked, to stdout. */
void config_dump(const struct config *cfg);

/*
 * Like config_dump(), to any stream: one "key = value" line per setting,
 * keys as in the file, values as the environment would take them; api.key
 * is "(set)" or "(unset)", and a password in redis.url is "***".
 */
void config_dump_to(const struct config *cfg, FILE *out);

#endif
