#include "sim_opts.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "xmalloc.h"

enum opt_id {
    OPT_LISTEN = 256,
    OPT_PORT_FILE,
    OPT_KEY,
    OPT_DIALECT,
    OPT_DURATION_MS,
    OPT_QUEUE_MS,
    OPT_PROGRESS_STEPS,
    OPT_RATE_500,
    OPT_RATE_429,
    OPT_RATE_SLOW,
    OPT_RATE_MALFORMED,
    OPT_RATE_QUEUE_FULL,
    OPT_RATE_IN_QUEUE,
    OPT_SLOW_MS,
    OPT_SEED,
    OPT_NUMERIC_IDS,
    OPT_VERBOSE,
    OPT_MAX_TASKS,
    OPT_ACCOUNT,
    OPT_ACCOUNT_LIMIT,
    OPT_MODE_LIMIT,
    OPT_NO_BATCH,
    OPT_HELP,
};

/* One row per option: its flag, its environment variable, whether the
 * flag takes a value. */
struct opt_desc {
    enum opt_id id;
    const char *flag;
    const char *env;
    bool has_arg;
};

static const struct opt_desc opt_table[] = {
    {OPT_LISTEN, "listen", "MJQ_SIM_LISTEN", true},
    {OPT_PORT_FILE, "port-file", "MJQ_SIM_PORT_FILE", true},
    {OPT_KEY, "key", "MJQ_SIM_KEY", true},
    {OPT_DIALECT, "dialect", "MJQ_SIM_DIALECT", true},
    {OPT_DURATION_MS, "duration-ms", "MJQ_SIM_DURATION_MS", true},
    {OPT_QUEUE_MS, "queue-ms", "MJQ_SIM_QUEUE_MS", true},
    {OPT_PROGRESS_STEPS, "progress-steps", "MJQ_SIM_PROGRESS_STEPS", true},
    {OPT_RATE_500, "rate-500", "MJQ_SIM_RATE_500", true},
    {OPT_RATE_429, "rate-429", "MJQ_SIM_RATE_429", true},
    {OPT_RATE_SLOW, "rate-slow", "MJQ_SIM_RATE_SLOW", true},
    {OPT_RATE_MALFORMED, "rate-malformed", "MJQ_SIM_RATE_MALFORMED", true},
    {OPT_RATE_QUEUE_FULL, "rate-queue-full", "MJQ_SIM_RATE_QUEUE_FULL", true},
    {OPT_RATE_IN_QUEUE, "rate-in-queue", "MJQ_SIM_RATE_IN_QUEUE", true},
    {OPT_SLOW_MS, "slow-ms", "MJQ_SIM_SLOW_MS", true},
    {OPT_SEED, "seed", "MJQ_SIM_SEED", true},
    {OPT_NUMERIC_IDS, "numeric-ids", "MJQ_SIM_NUMERIC_IDS", false},
    {OPT_VERBOSE, "verbose", "MJQ_SIM_VERBOSE", false},
    {OPT_MAX_TASKS, "max-tasks", "MJQ_SIM_MAX_TASKS", true},
    {OPT_ACCOUNT, "account", "MJQ_SIM_ACCOUNTS", true},
    {OPT_ACCOUNT_LIMIT, "account-limit", "MJQ_SIM_ACCOUNT_LIMIT", true},
    {OPT_MODE_LIMIT, "mode-limit", "MJQ_SIM_MODE_LIMITS", true},
    {OPT_NO_BATCH, "no-batch", "MJQ_SIM_NO_BATCH", false},
    {OPT_HELP, "help", NULL, false},
};

#define OPT_COUNT (sizeof(opt_table) / sizeof(opt_table[0]))

static const char usage_text[] =
    "usage: mjq sim [options]\n"
    "\n"
    "MJ API simulator (novicezk / trueai / new-api dialects) for demos,\n"
    "tests and benchmarks. Every option also reads an environment variable;\n"
    "flags win.\n"
    "\n"
    "  --listen HOST:PORT     MJQ_SIM_LISTEN (127.0.0.1:8080; port 0 = any)\n"
    "  --port-file FILE       MJQ_SIM_PORT_FILE: write the bound port there\n"
    "  --key KEY              MJQ_SIM_KEY: one account named 'default' with\n"
    "                         this key (default: no key, no auth)\n"
    "  --account NAME=KEY     MJQ_SIM_ACCOUNTS (NAME=KEY,NAME=KEY...): one\n"
    "                         more account; repeatable (flags replace the\n"
    "                         variable's list). NAME: 1-64 of A-Za-z0-9_.-\n"
    "                         With any key, a request must send\n"
    "                         'Authorization: Bearer KEY' or\n"
    "                         'mj-api-secret: KEY'; the key picks the "
    "account,\n"
    "                         which owns the tasks it creates. Without keys\n"
    "                         everything belongs to account 'default'.\n"
    "  --account-limit N      MJQ_SIM_ACCOUNT_LIMIT: at most N unfinished\n"
    "                         tasks (NOT_START/SUBMITTED/IN_PROGRESS, not\n"
    "                         MODAL) per account; a submit beyond is\n"
    "                         refused: novicezk code 23, trueai code 9,\n"
    "                         newapi HTTP 429 code 30 (0 = no limit)\n"
    "  --mode-limit MODE=N    MJQ_SIM_MODE_LIMITS (MODE=N,...): the same per\n"
    "                         account and mode (default|fast|relax|turbo,\n"
    "                         the path prefix); repeatable\n"
    "  --no-batch             MJQ_SIM_NO_BATCH=1: list-by-condition and\n"
    "                         list-by-ids answer 404 (a server without them)\n"
    "  --dialect NAME         MJQ_SIM_DIALECT: novicezk|trueai|newapi "
    "(trueai)\n"
    "  --duration-ms N        MJQ_SIM_DURATION_MS: submit to SUCCESS (3000)\n"
    "  --queue-ms N           MJQ_SIM_QUEUE_MS: time before IN_PROGRESS (0)\n"
    "  --progress-steps N     MJQ_SIM_PROGRESS_STEPS: progress steps (4)\n"
    "  --rate-500 P           MJQ_SIM_RATE_500: P(HTTP 500) per request\n"
    "  --rate-429 P           MJQ_SIM_RATE_429: P(HTTP 429)\n"
    "  --rate-slow P          MJQ_SIM_RATE_SLOW: P(reply after --slow-ms)\n"
    "  --rate-malformed P     MJQ_SIM_RATE_MALFORMED: P(broken body)\n"
    "  --rate-queue-full P    MJQ_SIM_RATE_QUEUE_FULL: P(queue full), submits\n"
    "  --rate-in-queue P      MJQ_SIM_RATE_IN_QUEUE: P(code 22) on accept\n"
    "  --slow-ms N            MJQ_SIM_SLOW_MS: slow reply delay (5000)\n"
    "  --seed N               MJQ_SIM_SEED: PRNG seed (default time-based)\n"
    "  --numeric-ids          MJQ_SIM_NUMERIC_IDS=1: submit result as number\n"
    "  --max-tasks N          MJQ_SIM_MAX_TASKS: keep at most N tasks,\n"
    "                         evicting the oldest (1000000)\n"
    "  --verbose              MJQ_SIM_VERBOSE=1: log every request (debug)\n"
    "  --help                 this text\n"
    "\n"
    "Test endpoints (no key needed):\n"
    "  GET  /healthz              'ok'\n"
    "  GET  /sim/stats            counters; per account, under 'accounts':\n"
    "                             revoked quota down submits accepted\n"
    "                             fetches batch_fetches batch_ids\n"
    "                             batch_not_found limit_refusals\n"
    "                             auth_refusals quota_refusals\n"
    "                             down_refusals in_flight in_flight_by_mode\n"
    "                             in_flight_max in_flight_max_by_mode\n"
    "                             min_read_gap_ms (smallest gap between two\n"
    "                             reads of one task: a fetch, or being in a\n"
    "                             list-by-condition answer; null until then)\n"
    "  POST /sim/reset            zero the counters (in_flight_max restarts\n"
    "                             from in_flight); accounts and their flags\n"
    "                             stay; {\"tasks\":true} also drops all tasks\n"
    "  GET  /sim/accounts         every account: flags and counters, no keys\n"
    "  POST /sim/accounts/NAME    {\"revoked\":B,\"quota\":B,\"down\":B}, "
    "each\n"
    "                             optional and sticky: revoked = its key is\n"
    "                             refused as invalid; quota false = submits\n"
    "                             refused quota_not_enough; down = every\n"
    "                             request of the account answers HTTP 500\n"
    "See docs/upstreams.md for the wire shapes.\n";

static int fail(struct sim_opts_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int fail(struct sim_opts_error *err, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err->text, sizeof(err->text), fmt, ap);
    va_end(ap);
    return -1;
}

static int parse_i64(const char *s, int64_t min, int64_t max, int64_t *out)
{
    char *end;
    long long v;

    if (*s == '\0')
        return -1;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int parse_rate(const char *s, double *out)
{
    char *end;
    double v;

    if (*s == '\0')
        return -1;
    errno = 0;
    v = strtod(s, &end);
    if (errno != 0 || *end != '\0' || isnan(v) || v < 0.0 || v > 1.0)
        return -1;
    *out = v;
    return 0;
}

static int parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"", "0", "false", "no", "off"};

    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strcmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
    }
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
        if (strcmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -1;
}

/* "HOST:PORT", "[V6]:PORT" or ":PORT" (host 127.0.0.1). */
static int parse_listen(struct sim_opts *o, const char *s)
{
    const char *colon;
    const char *host = s;
    size_t host_len;
    int64_t port;

    if (s[0] == '[') {
        const char *close = strchr(s, ']');

        if (close == NULL || close[1] != ':')
            return -1;
        host = s + 1;
        host_len = (size_t)(close - host);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL)
            return -1;
        host_len = (size_t)(colon - s);
    }
    if (parse_i64(colon + 1, 0, 65535, &port) != 0)
        return -1;
    free(o->listen_host);
    free(o->listen_port);
    o->listen_host = host_len ? xstrndup(host, host_len) : xstrdup("127.0.0.1");
    o->listen_port = xstrdup(colon + 1);
    return 0;
}

bool sim_account_name_ok(const char *s, size_t len)
{
    if (len == 0 || len > SIM_ACCOUNT_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
            return false;
    }
    return true;
}

/* A key travels in an HTTP header: printable ASCII, no space. */
static bool key_ok(const char *s, size_t len)
{
    if (len == 0 || len > SIM_ACCOUNT_KEY_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] <= ' ' || s[i] > '~')
            return false;
    }
    return true;
}

static void accounts_clear(struct sim_opts *o)
{
    for (size_t i = 0; i < o->naccounts; i++) {
        free(o->accounts[i].name);
        free(o->accounts[i].key);
    }
    free(o->accounts);
    o->accounts = NULL;
    o->naccounts = 0;
}

/*
 * One "NAME=KEY" (the len bytes at s). Error texts never quote the entry:
 * a misplaced '=' would put part of the key where the name goes.
 */
static int add_account(struct sim_opts *o, const char *s, size_t len,
                       const char *src, struct sim_opts_error *err)
{
    const char *eq = memchr(s, '=', len);
    size_t nlen;
    struct sim_account_opt *a;

    if (eq == NULL)
        return fail(err, "%s: expected NAME=KEY", src);
    nlen = (size_t)(eq - s);
    if (!sim_account_name_ok(s, nlen))
        return fail(err,
                    "%s: an account name is 1-%d characters of A-Z a-z 0-9 "
                    "_ . -",
                    src, SIM_ACCOUNT_NAME_MAX);
    if (!key_ok(eq + 1, len - nlen - 1))
        return fail(err,
                    "%s: a key is 1-%d printable ASCII characters without "
                    "spaces",
                    src, SIM_ACCOUNT_KEY_MAX);
    if (o->naccounts >= SIM_MAX_ACCOUNTS)
        return fail(err, "%s: more than %d accounts", src, SIM_MAX_ACCOUNTS);
    o->accounts =
        xrealloc(o->accounts, (o->naccounts + 1) * sizeof(*o->accounts));
    a = &o->accounts[o->naccounts++];
    a->name = xstrndup(s, nlen);
    a->key = xstrndup(eq + 1, len - nlen - 1);
    return 0;
}

static int parse_mode(const char *s, size_t len, enum sim_mode *out)
{
    for (int m = 0; m < SIM_MODE_COUNT; m++) {
        const char *name = sim_mode_name((enum sim_mode)m);

        if (strlen(name) == len && memcmp(name, s, len) == 0) {
            *out = (enum sim_mode)m;
            return 0;
        }
    }
    return -1;
}

/* One "MODE=N" (the len bytes at s). */
static int set_mode_limit(struct sim_opts *o, const char *s, size_t len,
                          const char *src, struct sim_opts_error *err)
{
    const char *eq = memchr(s, '=', len);
    enum sim_mode m;
    char num[24];
    size_t vlen;
    int64_t n;

    if (eq == NULL || parse_mode(s, (size_t)(eq - s), &m) != 0)
        return fail(err,
                    "%s: expected MODE=N with MODE default, fast, relax or "
                    "turbo, got '%.*s'",
                    src, (int)len, s);
    vlen = len - (size_t)(eq - s) - 1;
    if (vlen < sizeof(num)) {
        memcpy(num, eq + 1, vlen);
        num[vlen] = '\0';
    }
    if (vlen >= sizeof(num) || parse_i64(num, 0, 1000000000, &n) != 0)
        return fail(err, "%s: expected a count >= 0 after '=', got '%.*s'", src,
                    (int)len, s);
    o->mode_limit[m] = n;
    return 0;
}

/*
 * Applies `each` to every comma-separated entry of v (spaces around an
 * entry ignored, empty entries skipped): the environment's list form.
 */
static int each_entry(struct sim_opts *o, const char *v, const char *src,
                      struct sim_opts_error *err,
                      int (*each)(struct sim_opts *, const char *, size_t,
                                  const char *, struct sim_opts_error *))
{
    const char *p = v;

    while (*p != '\0') {
        const char *end = strchr(p, ',');
        const char *next;

        if (end == NULL)
            end = p + strlen(p);
        next = *end == ',' ? end + 1 : end;
        while (p < end && *p == ' ')
            p++;
        while (end > p && end[-1] == ' ')
            end--;
        if (end > p && each(o, p, (size_t)(end - p), src, err) != 0)
            return -1;
        p = next;
    }
    return 0;
}

static void set_string(char **slot, const char *v)
{
    free(*slot);
    *slot = xstrdup(v);
}

/*
 * Applies one option value; `src` names it for error messages. Values
 * from the environment (from_env) may be lists where a flag is one item.
 */
static int apply(struct sim_opts *o, enum opt_id id, const char *v,
                 const char *src, bool from_env, struct sim_opts_error *err)
{
    int64_t n;
    bool b;

    switch (id) {
    case OPT_LISTEN:
        if (parse_listen(o, v) != 0)
            return fail(err, "%s: expected HOST:PORT, got '%s'", src, v);
        return 0;
    case OPT_PORT_FILE:
        if (*v == '\0')
            return fail(err, "%s: empty file name", src);
        set_string(&o->port_file, v);
        return 0;
    case OPT_KEY:
        /* The value is a secret: never echo it back. */
        if (*v == '\0') {
            free(o->key);
            o->key = NULL;
        } else {
            set_string(&o->key, v);
        }
        return 0;
    case OPT_DIALECT:
        if (strcmp(v, "novicezk") == 0)
            o->dialect = SIM_DIALECT_NOVICEZK;
        else if (strcmp(v, "trueai") == 0)
            o->dialect = SIM_DIALECT_TRUEAI;
        else if (strcmp(v, "newapi") == 0)
            o->dialect = SIM_DIALECT_NEWAPI;
        else
            return fail(err,
                        "%s: expected novicezk, trueai or newapi, "
                        "got '%s'",
                        src, v);
        return 0;
    case OPT_DURATION_MS:
    case OPT_QUEUE_MS:
    case OPT_SLOW_MS:
        if (parse_i64(v, 0, INT64_C(86400000) * 365, &n) != 0)
            return fail(err, "%s: expected milliseconds >= 0, got '%s'", src,
                        v);
        if (id == OPT_DURATION_MS)
            o->duration_ms = n;
        else if (id == OPT_QUEUE_MS)
            o->queue_ms = n;
        else
            o->slow_ms = n;
        return 0;
    case OPT_PROGRESS_STEPS:
        if (parse_i64(v, 1, 100, &n) != 0)
            return fail(err, "%s: expected 1..100, got '%s'", src, v);
        o->progress_steps = (int)n;
        return 0;
    case OPT_MAX_TASKS:
        if (parse_i64(v, 1, INT64_C(1) << 40, &n) != 0)
            return fail(err, "%s: expected a count >= 1, got '%s'", src, v);
        o->max_tasks = n;
        return 0;
    case OPT_RATE_500:
    case OPT_RATE_429:
    case OPT_RATE_SLOW:
    case OPT_RATE_MALFORMED:
    case OPT_RATE_QUEUE_FULL:
    case OPT_RATE_IN_QUEUE: {
        double r;

        if (parse_rate(v, &r) != 0)
            return fail(err, "%s: expected a probability 0..1, got '%s'", src,
                        v);
        if (id == OPT_RATE_IN_QUEUE)
            o->rate_in_queue = r;
        else
            o->rate[id - OPT_RATE_500] = r;
        return 0;
    }
    case OPT_SEED:
        if (parse_i64(v, 0, INT64_MAX, &n) != 0)
            return fail(err, "%s: expected an integer >= 0, got '%s'", src, v);
        o->seed = (uint64_t)n;
        o->seed_set = true;
        return 0;
    case OPT_NUMERIC_IDS:
    case OPT_VERBOSE:
        if (parse_bool(v, &b) != 0)
            return fail(err, "%s: expected 0 or 1, got '%s'", src, v);
        if (id == OPT_NUMERIC_IDS)
            o->numeric_ids = b;
        else
            o->verbose = b;
        return 0;
    case OPT_ACCOUNT:
        if (from_env) {
            accounts_clear(o);
            o->accounts_from_env = true;
            return each_entry(o, v, src, err, add_account);
        }
        if (o->accounts_from_env) {
            accounts_clear(o); /* flags replace the variable's list */
            o->accounts_from_env = false;
        }
        return add_account(o, v, strlen(v), src, err);
    case OPT_ACCOUNT_LIMIT:
        if (parse_i64(v, 0, 1000000000, &n) != 0)
            return fail(err, "%s: expected a count >= 0, got '%s'", src, v);
        o->account_limit = n;
        return 0;
    case OPT_MODE_LIMIT:
        if (from_env)
            return each_entry(o, v, src, err, set_mode_limit);
        return set_mode_limit(o, v, strlen(v), src, err);
    case OPT_NO_BATCH:
        if (parse_bool(v, &b) != 0)
            return fail(err, "%s: expected 0 or 1, got '%s'", src, v);
        o->no_batch = b;
        return 0;
    case OPT_HELP:
        break;
    }
    return fail(err, "%s: unknown option", src);
}

static void set_defaults(struct sim_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->listen_host = xstrdup("127.0.0.1");
    o->listen_port = xstrdup("8080");
    o->dialect = SIM_DIALECT_TRUEAI;
    o->duration_ms = 3000;
    o->queue_ms = 0;
    o->progress_steps = 4;
    o->slow_ms = 5000;
    o->max_tasks = 1000000;
}

/*
 * Names and keys must be unique, --key's account ('default') included:
 * a key selects exactly one account. Neither is quoted in the error.
 */
static int check_accounts(const struct sim_opts *o, struct sim_opts_error *err)
{
    size_t total = o->naccounts + (o->key != NULL ? 1 : 0);

    if (total > SIM_MAX_ACCOUNTS)
        return fail(err, "more than %d accounts (--key counts as one)",
                    SIM_MAX_ACCOUNTS);
    for (size_t i = 0; i < o->naccounts; i++) {
        const struct sim_account_opt *a = &o->accounts[i];

        if (o->key != NULL && strcmp(a->name, "default") == 0)
            return fail(err, "--account: the name 'default' belongs to --key "
                             "(MJQ_SIM_KEY)");
        if (o->key != NULL && strcmp(a->key, o->key) == 0)
            return fail(err,
                        "--account: two accounts have the same key "
                        "(--key and account %zu)",
                        i + 1);
        for (size_t j = 0; j < i; j++) {
            if (strcmp(a->name, o->accounts[j].name) == 0)
                return fail(err,
                            "--account: accounts %zu and %zu have the same "
                            "name",
                            j + 1, i + 1);
            if (strcmp(a->key, o->accounts[j].key) == 0)
                return fail(err,
                            "--account: accounts %zu and %zu have the same "
                            "key",
                            j + 1, i + 1);
        }
    }
    return 0;
}

int sim_opts_parse(struct sim_opts *opts, int argc, char **argv, FILE *help,
                   struct sim_opts_error *err)
{
    struct option longopts[OPT_COUNT + 1];
    int c;

    set_defaults(opts);
    err->text[0] = '\0';

    for (size_t i = 0; i < OPT_COUNT; i++) {
        const char *v;

        if (opt_table[i].env == NULL)
            continue;
        v = getenv(opt_table[i].env);
        if (v == NULL)
            continue;
        if (apply(opts, opt_table[i].id, v, opt_table[i].env, true, err) != 0)
            return -1;
    }

    for (size_t i = 0; i < OPT_COUNT; i++) {
        longopts[i].name = opt_table[i].flag;
        longopts[i].has_arg =
            opt_table[i].has_arg ? required_argument : no_argument;
        longopts[i].flag = NULL;
        longopts[i].val = (int)opt_table[i].id;
    }
    memset(&longopts[OPT_COUNT], 0, sizeof(longopts[OPT_COUNT]));

    optind = 0; /* glibc: full reset, so parsing twice works (tests) */
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
        char src[64];

        if (c == 'h' || c == OPT_HELP) {
            fputs(usage_text, help);
            return 1;
        }
        if (c == '?' || c == ':') {
            if (optopt >= OPT_LISTEN)
                return fail(err, "option --%s needs a value",
                            opt_table[optopt - OPT_LISTEN].flag);
            return fail(err, "unknown option '%s' (see --help)",
                        argv[optind - 1]);
        }
        snprintf(src, sizeof(src), "--%s", opt_table[c - OPT_LISTEN].flag);
        if (apply(opts, (enum opt_id)c, optarg ? optarg : "1", src, false,
                  err) != 0)
            return -1;
    }
    if (optind < argc)
        return fail(err, "unexpected argument '%s'", argv[optind]);
    return check_accounts(opts, err);
}

void sim_opts_free(struct sim_opts *opts)
{
    if (opts == NULL)
        return;
    free(opts->listen_host);
    free(opts->listen_port);
    free(opts->port_file);
    free(opts->key);
    accounts_clear(opts);
    opts->listen_host = NULL;
    opts->listen_port = NULL;
    opts->port_file = NULL;
    opts->key = NULL;
}

const char *sim_dialect_name(enum sim_dialect d)
{
    switch (d) {
    case SIM_DIALECT_NOVICEZK:
        return "novicezk";
    case SIM_DIALECT_TRUEAI:
        return "trueai";
    case SIM_DIALECT_NEWAPI:
        return "newapi";
    }
    return "?";
}

const char *sim_mode_name(enum sim_mode m)
{
    static const char *const names[SIM_MODE_COUNT] = {"default", "fast",
                                                      "relax", "turbo"};

    return (unsigned)m < SIM_MODE_COUNT ? names[m] : "?";
}

const char *sim_fault_name(enum sim_fault f)
{
    static const char *const names[SIM_FAULT_COUNT] = {
        "500", "429", "slow", "malformed", "queue_full"};

    if (f < 0 || f >= SIM_FAULT_COUNT)
        return "none";
    return names[f];
}
