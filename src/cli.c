#include "cli.h"

#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <sysexits.h>

#include "worker.h"
#include "xmalloc.h"

static const struct cli_flag *find_flag(const struct cli_flag *flags,
                                        size_t nflags, const char *name)
{
    for (size_t i = 0; i < nflags; i++) {
        if (strcmp(flags[i].name, name) == 0)
            return &flags[i];
    }
    return NULL;
}

/*
 * Sorts argv into the command's own flags (stored) and the settings,
 * copied with their values into rest for worker_parse_args. Returns 0, 1
 * after --help or -EX_USAGE.
 */
static int split_args(const char *prog, int argc, char **argv,
                      const struct cli_flag *flags, size_t nflags,
                      void (*usage)(FILE *), char **rest, int *nrest)
{
    rest[(*nrest)++] = argv[0];
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *eq;
        const struct cli_flag *f;
        char name[64];

        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            usage(stdout);
            return 1;
        }
        if (strncmp(arg, "--", 2) != 0) {
            fprintf(stderr, "%s: unexpected argument '%s' (see --help)\n", prog,
                    arg);
            return -EX_USAGE;
        }
        eq = strchr(arg, '=');
        snprintf(name, sizeof(name), "%.*s",
                 (int)(eq != NULL ? (size_t)(eq - arg - 2) : strlen(arg + 2)),
                 arg + 2);
        f = find_flag(flags, nflags, name);
        if (f != NULL && f->value == NULL) {
            if (eq != NULL) {
                fprintf(stderr, "%s: --%s takes no value\n", prog, name);
                return -EX_USAGE;
            }
            *f->set = 1;
            continue;
        }
        if (f != NULL) {
            const char *value =
                eq != NULL ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);

            if (value == NULL) {
                fprintf(stderr, "%s: --%s needs a value\n", prog, name);
                return -EX_USAGE;
            }
            *f->value = value;
            continue;
        }
        if (strcmp(name, "config") != 0 && strcmp(name, "set") != 0 &&
            config_flag_key(name) == NULL) {
            fprintf(stderr, "%s: unknown option --%s (see --help)\n", prog,
                    name);
            return -EX_USAGE;
        }
        /* A setting: worker_parse_args parses and checks it. */
        rest[(*nrest)++] = argv[i];
        if (eq == NULL && i + 1 < argc)
            rest[(*nrest)++] = argv[++i];
    }
    return 0;
}

int cli_parse(const char *prog, int argc, char **argv,
              const struct cli_flag *flags, size_t nflags,
              void (*usage)(FILE *), struct config *cfg)
{
    char **rest = xcalloc((size_t)argc + 1, sizeof(char *));
    char **settings = NULL;
    size_t nsettings = 0;
    const char *path = NULL;
    struct config_error err;
    int nrest = 0, rc;

    memset(cfg, 0, sizeof(*cfg));
    rc = split_args(prog, argc, argv, flags, nflags, usage, rest, &nrest);
    if (rc == 0 && worker_parse_args(nrest, rest, usage, &path, &settings,
                                     &nsettings) != 0)
        rc = -EX_USAGE;
    if (rc == 0 && config_load(cfg, path, settings, nsettings, &err) != 0) {
        char line[1024];

        config_error_format(&err, line, sizeof(line));
        fprintf(stderr, "%s: %s\n", prog, line);
        rc = -MJQ_EXIT_CONFIG;
    }
    if (settings != NULL)
        worker_free_args(settings, nsettings);
    free(rest);
    return rc;
}

redisReply *cli_checked(const char *prog, redisContext *c, void *reply,
                        const char *what)
{
    redisReply *r = reply;

    if (r == NULL) {
        fprintf(stderr, "%s: redis %s: %s\n", prog, what, c->errstr);
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        fprintf(stderr, "%s: redis %s: %s\n", prog, what, r->str);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

void cli_redis_where(const struct config *cfg, char *buf, size_t len)
{
    if (cfg->redis_unix_path != NULL)
        snprintf(buf, len, "%s", cfg->redis_unix_path);
    else
        snprintf(buf, len, "%s:%d/%d", cfg->redis_host, cfg->redis_port,
                 cfg->redis_db);
}

redisContext *cli_redis_open(const char *prog, const struct config *cfg,
                             int timeout_s)
{
    struct timeval tv = {timeout_s, 0};
    redisContext *c;
    redisReply *r;
    char where[300];

    cli_redis_where(cfg, where, sizeof(where));
    if (cfg->redis_unix_path != NULL)
        c = redisConnectUnixWithTimeout(cfg->redis_unix_path, tv);
    else
        c = redisConnectWithTimeout(cfg->redis_host, cfg->redis_port, tv);
    if (c == NULL || c->err) {
        fprintf(stderr, "%s: redis %s: %s\n", prog, where,
                c != NULL ? c->errstr : "out of memory");
        goto fail;
    }
    if (redisSetTimeout(c, tv) != REDIS_OK) {
        fprintf(stderr, "%s: redis %s: cannot set the socket timeout\n", prog,
                where);
        goto fail;
    }
    /* The password is an argument, never part of a format or message. */
    if (cfg->redis_password != NULL) {
        r = cli_checked(prog, c,
                        cfg->redis_username != NULL
                            ? redisCommand(c, "AUTH %s %s", cfg->redis_username,
                                           cfg->redis_password)
                            : redisCommand(c, "AUTH %s", cfg->redis_password),
                        "AUTH");
        if (r == NULL)
            goto fail;
        freeReplyObject(r);
    }
    if (cfg->redis_db != 0) {
        r = cli_checked(prog, c, redisCommand(c, "SELECT %d", cfg->redis_db),
                        "SELECT");
        if (r == NULL)
            goto fail;
        freeReplyObject(r);
    }
    return c;
fail:
    if (c != NULL)
        redisFree(c);
    return NULL;
}

void cli_format_ms(int64_t ms, char *buf, size_t len)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;

    if (ms < 0 || gmtime_r(&secs, &tm) == NULL) {
        snprintf(buf, len, "(time %lld)", (long long)ms);
        return;
    }
    snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (int)(ms % 1000));
}

json_t *cli_entry_object(const redisReply *kv)
{
    json_t *obj = json_object();

    for (size_t i = 0; i + 1 < kv->elements; i += 2) {
        const redisReply *k = kv->element[i], *v = kv->element[i + 1];
        json_t *s;

        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            continue;
        s = json_stringn(v->str, v->len);
        json_object_set_new(obj, k->str,
                            s != NULL ? s : json_string("(not UTF-8)"));
    }
    return obj;
}
