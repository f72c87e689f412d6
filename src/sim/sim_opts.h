#ifndef MJQ_SIM_OPTS_H
#define MJQ_SIM_OPTS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/*
 * Options of `mjq sim`: environment variables (MJQ_SIM_*) first, then
 * command-line flags, which win. A plain value struct: every module of the
 * simulator reads it, nothing outside src/sim/ does.
 */

enum sim_dialect {
    SIM_DIALECT_NOVICEZK, /* novicezk/midjourney-proxy (Java) */
    SIM_DIALECT_TRUEAI,   /* trueai-org/midjourney-proxy (C#) */
    SIM_DIALECT_NEWAPI,   /* new-api relay in front of a proxy */
};

/* Speed-mode path prefix of a request: by_mode keys, per-mode limits. */
enum sim_mode {
    SIM_MODE_DEFAULT, /* /mj/... */
    SIM_MODE_FAST,    /* /mj-fast/mj/... */
    SIM_MODE_RELAX,   /* /mj-relax/mj/... */
    SIM_MODE_TURBO,   /* /mj-turbo/mj/... */
    SIM_MODE_COUNT,
};

/* Fault kinds, each drawn independently per request, in this order. */
enum sim_fault {
    SIM_FAULT_NONE = -1,
    SIM_FAULT_500 = 0,    /* HTTP 500 */
    SIM_FAULT_429,        /* HTTP 429 */
    SIM_FAULT_SLOW,       /* reply after slow_ms (503 for a submit) */
    SIM_FAULT_MALFORMED,  /* HTTP 200 with a broken body */
    SIM_FAULT_QUEUE_FULL, /* submits only: code 23 / 9 */
    SIM_FAULT_COUNT,
};

/*
 * Bounds of the account options: few accounts (a key is looked up by a
 * scan, see sim_account.h), names safe in JSON keys and URL paths.
 */
#define SIM_MAX_ACCOUNTS     64
#define SIM_ACCOUNT_NAME_MAX 64
#define SIM_ACCOUNT_KEY_MAX  1024

/* One --account NAME=KEY. */
struct sim_account_opt {
    char *name; /* owned; [A-Za-z0-9_.-]{1,64} */
    char *key;  /* owned; printable ASCII, no space; a secret, never logged */
};

struct sim_opts {
    char *listen_host;        /* owned; "127.0.0.1" by default */
    char *listen_port;        /* owned; decimal string, "0" = any free port */
    char *port_file;          /* owned or NULL: written after bind */
    char *key;                /* owned or NULL: account "default"; a secret */
    enum sim_dialect dialect; /* default trueai */
    int64_t duration_ms;      /* submit -> SUCCESS, default 3000 */
    int64_t queue_ms;         /* NOT_START/SUBMITTED part, default 0 */
    int progress_steps;       /* IN_PROGRESS steps, default 4 */
    double rate[SIM_FAULT_COUNT];     /* probability 0..1 per request */
    double rate_in_queue;             /* probability of code 22 on accept */
    int64_t slow_ms;                  /* delay of a slow reply, default 5000 */
    uint64_t seed;                    /* PRNG seed; time-based by default */
    bool seed_set;                    /* --seed or MJQ_SIM_SEED given */
    bool numeric_ids;                 /* submit result as a JSON number */
    bool verbose;                     /* log every request at debug */
    int64_t max_tasks;                /* table bound, oldest evicted first */
    struct sim_account_opt *accounts; /* owned array of naccounts */
    size_t naccounts;                 /* --account given (key is extra) */
    bool accounts_from_env;           /* list still MJQ_SIM_ACCOUNTS's */
    int64_t account_limit;            /* unfinished tasks, 0 = no limit */
    int64_t mode_limit[SIM_MODE_COUNT]; /* the same per mode */
    bool no_batch;                      /* list-by-condition answers 404 */
};

/* Parse failure: which option, and why. */
struct sim_opts_error {
    char text[256];
};

/*
 * Fills *opts from the environment and argv (argv[0] is "sim"; getopt
 * state is reset first). Returns 0, 1 when --help was printed to `help`,
 * or -1 with err->text set. On any return *opts holds only owned strings:
 * release it with sim_opts_free().
 */
int sim_opts_parse(struct sim_opts *opts, int argc, char **argv, FILE *help,
                   struct sim_opts_error *err);

/* Frees the strings held by *opts (not opts itself). NULL is a no-op. */
void sim_opts_free(struct sim_opts *opts);

/* Dialect name ("novicezk", ...); never NULL. */
const char *sim_dialect_name(enum sim_dialect d);

/* Mode name ("default", "fast", "relax", "turbo"); never NULL. */
const char *sim_mode_name(enum sim_mode m);

/* True for a valid account name: [A-Za-z0-9_.-], 1 to 64 characters. */
bool sim_account_name_ok(const char *s, size_t len);

/* Fault name as used in /sim/stats ("500", "429", "slow", ...). */
const char *sim_fault_name(enum sim_fault f);

#endif
