#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"

/*
 * Config module tests. Temp files live in one mkdtemp directory; every test
 * starts and ends with no MJQ_* variable set (except MJQ_SRC, which locates
 * conf/mjq.conf).
 */

extern char **environ;

static char tmpdir[PATH_MAX];
static char conf_path[PATH_MAX];

static void clear_env(void)
{
    char *names[256];
    size_t n = 0;

    /* Collect first: unsetenv() changes environ under us. */
    for (char **e = environ; *e != NULL && n < 256; e++) {
        size_t len = strcspn(*e, "=");

        if (strncmp(*e, "MJQ_", 4) == 0 && strncmp(*e, "MJQ_SRC=", 8) != 0)
            names[n++] = strndup(*e, len);
    }
    for (size_t i = 0; i < n; i++) {
        unsetenv(names[i]);
        free(names[i]);
    }
}

static int group_setup(void **state)
{
    const char *src = getenv("MJQ_SRC");

    snprintf(tmpdir, sizeof(tmpdir), "/tmp/mjq-test-config.XXXXXX");
    if (mkdtemp(tmpdir) == NULL)
        return -1;
    if (src != NULL && src[0] != '\0') {
        snprintf(conf_path, sizeof(conf_path), "%s/conf/mjq.conf", src);
    } else {
        /* __FILE__ is absolute under CMake: <root>/tests/unit/test_config.c */
        const char *file = __FILE__;
        const char *tail = strstr(file, "/tests/unit/test_config.c");

        if (tail == NULL)
            snprintf(conf_path, sizeof(conf_path), "../conf/mjq.conf");
        else
            snprintf(conf_path, sizeof(conf_path), "%.*s/conf/mjq.conf",
                     (int)(tail - file), file);
    }
    return 0;
}

static int group_teardown(void **state)
{
    DIR *d = opendir(tmpdir);
    struct dirent *de;

    if (d != NULL) {
        while ((de = readdir(d)) != NULL) {
            char path[PATH_MAX + 256];

            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                continue;
            snprintf(path, sizeof(path), "%s/%s", tmpdir, de->d_name);
            if (rmdir(path) < 0)
                unlink(path);
        }
        closedir(d);
    }
    rmdir(tmpdir);
    return 0;
}

static int test_setup(void **state)
{
    clear_env();
    return 0;
}

static int test_teardown(void **state)
{
    clear_env();
    return 0;
}

/* Writes content to <tmpdir>/name; returns the path (static, per name). */
static const char *write_file(const char *name, const char *content)
{
    static char paths[8][PATH_MAX + 64];
    static int next;
    char *path = paths[next++ % 8];
    FILE *f;

    snprintf(path, PATH_MAX + 64, "%s/%s", tmpdir, name);
    f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(content, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
    return path;
}

/* config_error_format into a static buffer. */
static const char *fmt(const struct config_error *err)
{
    static char buf[1024];

    config_error_format(err, buf, sizeof(buf));
    return buf;
}

static char *dump(const struct config *cfg)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    assert_non_null(f);
    config_dump_to(cfg, f);
    assert_int_equal(fclose(f), 0);
    return buf;
}

/* Loads only a file; asserts failure and returns the error. */
static struct config_error load_fails(const char *path, char *const *flags,
                                      size_t nflags)
{
    struct config cfg;
    struct config_error err;

    if (config_load(&cfg, path, flags, nflags, &err) != -1)
        fail_msg("config_load(%s, %zu flags) succeeded",
                 path != NULL ? path : "NULL", nflags);
    config_free(&cfg);
    return err;
}

/* Sets one environment variable, loads, expects failure. */
static struct config_error env_fails(const char *name, const char *value)
{
    struct config_error err;

    setenv(name, value, 1);
    err = load_fails(NULL, NULL, 0);
    unsetenv(name);
    return err;
}

/* config_set on a defaulted config, expects failure. */
static struct config_error set_fails(const char *key, const char *value)
{
    struct config cfg;
    struct config_error err;

    config_defaults(&cfg);
    assert_int_equal(config_set(&cfg, key, value, &err), -1);
    config_free(&cfg);
    return err;
}

static void assert_defaults(const struct config *cfg)
{
    assert_string_equal(cfg->redis_url, "redis://127.0.0.1:6379/0");
    assert_string_equal(cfg->redis_host, "127.0.0.1");
    assert_int_equal(cfg->redis_port, 6379);
    assert_null(cfg->redis_unix_path);
    assert_null(cfg->redis_username);
    assert_null(cfg->redis_password);
    assert_int_equal(cfg->redis_db, 0);
    assert_string_equal(cfg->prefix, "mjq:");
    assert_int_equal(cfg->nqueues, 1);
    assert_string_equal(cfg->queues[0], "default");
    assert_string_equal(cfg->api.base_url, "http://127.0.0.1:8080");
    assert_null(cfg->api.key);
    assert_null(cfg->api.key_file);
    assert_string_equal(cfg->api.routes[MODE_DEFAULT], "");
    assert_string_equal(cfg->api.routes[MODE_FAST], "/mj-fast");
    assert_string_equal(cfg->api.routes[MODE_RELAX], "/mj-relax");
    assert_string_equal(cfg->api.routes[MODE_TURBO], "/mj-turbo");
    assert_int_equal(cfg->api.timeout_ms, 30000);
    assert_int_equal(cfg->api.connect_timeout_ms, 5000);
    assert_null(cfg->notify_hook);
    assert_int_equal(cfg->concurrency, 100);
    assert_int_equal(cfg->npoll_schedule, 3);
    assert_int_equal(cfg->poll_schedule_ms[0], 2000);
    assert_int_equal(cfg->poll_schedule_ms[1], 4000);
    assert_int_equal(cfg->poll_schedule_ms[2], 8000);
    assert_int_equal(cfg->mode_timeout_s[MODE_DEFAULT], 600);
    assert_int_equal(cfg->dedup_window_s, 86400);
    assert_int_equal(cfg->results_maxlen, 1000000);
    assert_int_equal(cfg->events_maxlen, 100000);
    assert_int_equal(cfg->max_job_bytes, 33554432);
    assert_int_equal(cfg->submit_max_attempts, 8);
    assert_int_equal(cfg->retry_base_ms, 1000);
    assert_int_equal(cfg->retry_max_ms, 30000);
    assert_int_equal(cfg->lost_after_not_found, 3);
    assert_int_equal(cfg->heartbeat_ms, 2000);
    assert_int_equal(cfg->heartbeat_ttl_ms, 6000);
    assert_int_equal(cfg->shutdown_timeout_s, 10);
    assert_int_equal(cfg->workers, 1);
    assert_int_equal(cfg->log_level, LOG_LEVEL_INFO);
    assert_int_equal(cfg->log_format, LOG_FORMAT_TEXT);
}

static void test_defaults(void **state)
{
    struct config cfg;
    struct config_error err;

    config_defaults(&cfg);
    assert_defaults(&cfg);
    assert_null(cfg.config_path);
    config_free(&cfg);

    /* No file, no environment, no flags: the same. */
    assert_int_equal(config_load(&cfg, NULL, NULL, 0, &err), 0);
    assert_defaults(&cfg);
    assert_null(cfg.config_path);
    config_free(&cfg);
}

/* conf/mjq.conf loads cleanly, and its values are exactly the defaults. */
static void test_shipped_conf(void **state)
{
    struct config cfg, def;
    struct config_error err;
    char *a, *b;

    if (config_load(&cfg, conf_path, NULL, 0, &err) != 0)
        fail_msg("%s: %s", conf_path, fmt(&err));
    assert_string_equal(cfg.config_path, conf_path);
    assert_defaults(&cfg);
    config_defaults(&def);
    a = dump(&cfg);
    b = dump(&def);
    assert_string_equal(a, b);
    free(a);
    free(b);
    config_free(&def);
    config_free(&cfg);
}

/* Every setting of the table is in the shipped file (not commented). */
static void test_shipped_conf_is_complete(void **state)
{
    struct config def;
    char *d, *line, *save = NULL;
    FILE *f = fopen(conf_path, "r");
    char text[65536];
    size_t n;

    assert_non_null(f);
    n = fread(text, 1, sizeof(text) - 1, f);
    text[n] = '\0';
    fclose(f);
    config_defaults(&def);
    d = dump(&def);
    for (line = strtok_r(d, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        const char *key = line, *last;
        char needle[80];

        *strchr(line, ' ') = '\0';
        last = strrchr(key, '.') != NULL ? strrchr(key, '.') + 1 : key;
        snprintf(needle, sizeof(needle), "\n    %s = ", last);
        if (strcmp(key, "queues") == 0)
            snprintf(needle, sizeof(needle), "\nqueues = ");
        else if (strncmp(key, "api.routes.", 11) == 0 ||
                 strncmp(key, "api.limits.", 11) == 0)
            snprintf(needle, sizeof(needle), "\n        %s = ", last);
        else if (strcmp(key, "api.key") == 0 ||
                 strcmp(key, "api.key_file") == 0)
            snprintf(needle, sizeof(needle), "\n    # %s = ", last);
        if (strstr(text, needle) == NULL)
            fail_msg("conf/mjq.conf lacks %s", key);
    }
    free(d);
    config_free(&def);
}

static void test_file_overrides_defaults(void **state)
{
    struct config cfg;
    struct config_error err;
    const char *path = write_file(
        "override.conf",
        "redis = { url = \"redis://:pw@redis.example:6380/2\";\n"
        "          prefix = \"app:\"; };\n"
        "queues = [\"high\", \"default\", \"low\"];\n"
        "api = { base_url = \"https://mj.example/v1/\";\n"
        "        timeout_ms = 60000;\n"
        "        notify_hook = \"https://hooks.example/mj?t=1\";\n"
        "        routes = { fast = \"/fast\"; default = \"/std\"; }; };\n"
        "worker = { concurrency = \"250\"; # 5000000000 in a comment\n"
        "           poll_schedule_ms = [500, 1000];\n"
        "           max_job_bytes = \"8M\";\n"
        "           heartbeat_ms = 1000; heartbeat_ttl_ms = 3000; };\n"
        "results = { maxlen = 10000000000L; };\n"
        "events = { maxlen = \"5000000000\"; };\n"
        "supervisor = { workers = 4; };\n"
        "log = { level = \"debug\"; format = \"json\"; };\n");

    if (config_load(&cfg, path, NULL, 0, &err) != 0)
        fail_msg("%s", fmt(&err));
    assert_string_equal(cfg.config_path, path);
    assert_string_equal(cfg.redis_host, "redis.example");
    assert_int_equal(cfg.redis_port, 6380);
    assert_int_equal(cfg.redis_db, 2);
    assert_null(cfg.redis_username);
    assert_string_equal(cfg.redis_password, "pw");
    assert_string_equal(cfg.prefix, "app:");
    assert_int_equal(cfg.nqueues, 3);
    assert_string_equal(cfg.queues[0], "high");
    assert_string_equal(cfg.queues[1], "default");
    assert_string_equal(cfg.queues[2], "low");
    assert_string_equal(cfg.api.base_url, "https://mj.example/v1");
    assert_int_equal(cfg.api.timeout_ms, 60000);
    assert_string_equal(cfg.notify_hook, "https://hooks.example/mj?t=1");
    assert_string_equal(cfg.api.routes[MODE_DEFAULT], "/std");
    assert_string_equal(cfg.api.routes[MODE_FAST], "/fast");
    assert_string_equal(cfg.api.routes[MODE_RELAX], "/mj-relax");
    assert_int_equal(cfg.concurrency, 250);
    assert_int_equal(cfg.npoll_schedule, 2);
    assert_int_equal(cfg.poll_schedule_ms[0], 500);
    assert_int_equal(cfg.poll_schedule_ms[1], 1000);
    assert_int_equal(cfg.max_job_bytes, 8 * 1048576);
    assert_int_equal(cfg.heartbeat_ms, 1000);
    assert_int_equal(cfg.heartbeat_ttl_ms, 3000);
    assert_int_equal(cfg.results_maxlen, 10000000000L);
    assert_int_equal(cfg.events_maxlen, 5000000000L);
    assert_int_equal(cfg.workers, 4);
    assert_int_equal(cfg.log_level, LOG_LEVEL_DEBUG);
    assert_int_equal(cfg.log_format, LOG_FORMAT_JSON);
    /* Untouched settings keep their defaults. */
    assert_int_equal(cfg.api.connect_timeout_ms, 5000);
    assert_int_equal(cfg.mode_timeout_s[MODE_DEFAULT], 600);
    config_free(&cfg);
}

static void test_env_overrides_file(void **state)
{
    struct config cfg;
    struct config_error err;
    const char *path = write_file("env.conf", "worker = { concurrency = 5;\n"
                                              "  job_timeout_s = 30; };\n"
                                              "queues = \"a,b\";\n");

    setenv("MJQ_CONCURRENCY", "7", 1);
    setenv("MJQ_QUEUES", " x , y,z ", 1);
    setenv("MJQ_POLL_SCHEDULE_MS", "100,200", 1);
    setenv("MJQ_REDIS_URL", "unix:///run/redis.sock", 1);
    setenv("MJQ_NOT_A_SETTING", "whatever", 1); /* other tools' vars */
    if (config_load(&cfg, path, NULL, 0, &err) != 0)
        fail_msg("%s", fmt(&err));
    assert_int_equal(cfg.concurrency, 7);
    assert_int_equal(cfg.mode_timeout_s[MODE_DEFAULT], 30); /* from the file */
    assert_int_equal(cfg.nqueues, 3);
    assert_string_equal(cfg.queues[0], "x");
    assert_string_equal(cfg.queues[1], "y");
    assert_string_equal(cfg.queues[2], "z");
    assert_int_equal(cfg.npoll_schedule, 2);
    assert_int_equal(cfg.poll_schedule_ms[1], 200);
    assert_string_equal(cfg.redis_unix_path, "/run/redis.sock");
    assert_null(cfg.redis_host);
    config_free(&cfg);
}

static void test_flags_override_env(void **state)
{
    struct config cfg;
    struct config_error err;
    const char *path = write_file("flags.conf", "worker: { concurrency = 5; "
                                                "workers_unused_check = 1; };");
    char *flags[] = {"worker.concurrency=9", "log.level=warn",
                     "worker.concurrency=11", "api.routes.fast="};

    /* The file has an unknown key: proves flags do not skip the file. */
    setenv("MJQ_CONCURRENCY", "7", 1);
    assert_int_equal(config_load(&cfg, path, flags, 4, &err), -1);
    assert_string_equal(err.key, "worker.workers_unused_check");
    config_free(&cfg);

    path = write_file("flags.conf", "worker: { concurrency = 5; };");
    setenv("MJQ_LOG_LEVEL", "error", 1);
    if (config_load(&cfg, path, flags, 4, &err) != 0)
        fail_msg("%s", fmt(&err));
    assert_int_equal(cfg.concurrency, 11); /* the last flag wins */
    assert_int_equal(cfg.log_level, LOG_LEVEL_WARN);
    assert_string_equal(cfg.api.routes[MODE_FAST], "");
    config_free(&cfg);

    /* Translating a CLI flag name to its key. */
    assert_string_equal(config_flag_key("concurrency"), "worker.concurrency");
    assert_string_equal(config_flag_key("redis-url"), "redis.url");
    assert_string_equal(config_flag_key("prefix"), "redis.prefix");
    assert_string_equal(config_flag_key("queues"), "queues");
    assert_string_equal(config_flag_key("api-key-file"), "api.key_file");
    assert_string_equal(config_flag_key("route-turbo"), "api.routes.turbo");
    assert_string_equal(config_flag_key("workers"), "supervisor.workers");
    assert_string_equal(config_flag_key("results-maxlen"), "results.maxlen");
    assert_null(config_flag_key("api-key")); /* keys never on the CLI */
    assert_null(config_flag_key("worker.concurrency"));
    assert_null(config_flag_key("--concurrency"));
    assert_null(config_flag_key(""));
}

/* One reason for one bad value, whichever source; only the key differs. */
static void test_same_reason_every_source(void **state)
{
    const char *path = write_file("zero.conf", "# comment\n\n"
                                               "worker:\n{\n"
                                               "  concurrency = 0;\n};\n");
    char *flags[] = {"worker.concurrency=0"};
    struct config_error err;
    char line[PATH_MAX + 128];

    err = load_fails(path, NULL, 0);
    snprintf(line, sizeof(line),
             "config: worker.concurrency=0: must be between 1 and 100000 "
             "(%s:5)",
             path);
    assert_string_equal(fmt(&err), line);
    assert_string_equal(err.file, path);
    assert_int_equal(err.line, 5);

    err = env_fails("MJQ_CONCURRENCY", "0");
    assert_string_equal(fmt(&err), "config: MJQ_CONCURRENCY=0: must be "
                                   "between 1 and 100000");
    assert_int_equal(err.line, 0);
    assert_string_equal(err.file, "");

    err = load_fails(NULL, flags, 1);
    assert_string_equal(fmt(&err), "config: --concurrency=0: must be "
                                   "between 1 and 100000");

    err = set_fails("worker.concurrency", "0");
    assert_string_equal(fmt(&err), "config: worker.concurrency=0: must be "
                                   "between 1 and 100000");
}

static void test_bad_integers(void **state)
{
    static const struct {
        const char *env, *value, *reason;
    } cases[] = {
        {"MJQ_CONCURRENCY", "abc", "not an integer"},
        {"MJQ_CONCURRENCY", "12x", "not an integer"},
        {"MJQ_CONCURRENCY", "", "not an integer"},
        {"MJQ_CONCURRENCY", " 5", "not an integer"},
        {"MJQ_CONCURRENCY", "5 ", "not an integer"},
        {"MJQ_CONCURRENCY", "0x10", "not an integer"},
        {"MJQ_CONCURRENCY", "1.5", "not an integer"},
        {"MJQ_CONCURRENCY", "100001", "must be between 1 and 100000"},
        {"MJQ_CONCURRENCY", "-1", "must be between 1 and 100000"},
        {"MJQ_CONCURRENCY", "99999999999999999999",
         "must be between 1 and 100000"},
        {"MJQ_API_TIMEOUT_MS", "99", "must be between 100 and 600000"},
        {"MJQ_API_CONNECT_TIMEOUT_MS", "60001",
         "must be between 100 and 60000"},
        {"MJQ_JOB_TIMEOUT_S", "604801", "must be between 1 and 604800"},
        {"MJQ_DEDUP_WINDOW_S", "0", "must be between 1 and 31536000"},
        {"MJQ_RESULTS_MAXLEN", "10000000001",
         "must be between 1 and 10000000000"},
        {"MJQ_EVENTS_MAXLEN", "0", "must be between 1 and 10000000000"},
        {"MJQ_SUBMIT_MAX_ATTEMPTS", "101", "must be between 1 and 100"},
        {"MJQ_RETRY_BASE_MS", "-5", "must be between 0 and 600000"},
        {"MJQ_LOST_AFTER_NOT_FOUND", "0", "must be between 1 and 100"},
        {"MJQ_HEARTBEAT_MS", "50", "must be between 100 and 60000"},
        {"MJQ_SHUTDOWN_TIMEOUT_S", "3601", "must be between 1 and 3600"},
        {"MJQ_WORKERS", "257", "must be between 1 and 256"},
        {"MJQ_WORKERS", "two", "not an integer"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct config_error err = env_fails(cases[i].env, cases[i].value);

        if (strcmp(err.reason, cases[i].reason) != 0 ||
            strcmp(err.key, cases[i].env) != 0)
            fail_msg("%s=%s: got \"%s\"", cases[i].env, cases[i].value,
                     fmt(&err));
    }
    /* Empty values are shown as "", so they are visible in the line. */
    {
        struct config_error err = env_fails("MJQ_CONCURRENCY", "");

        assert_string_equal(fmt(&err),
                            "config: MJQ_CONCURRENCY=\"\": not an integer");
    }
}

static void test_bad_enums(void **state)
{
    struct config_error err;
    struct config cfg;

    err = env_fails("MJQ_LOG_LEVEL", "verbose");
    assert_string_equal(fmt(&err), "config: MJQ_LOG_LEVEL=verbose: must be "
                                   "one of debug, info, warn, error");
    err = env_fails("MJQ_LOG_FORMAT", "xml");
    assert_string_equal(fmt(&err),
                        "config: MJQ_LOG_FORMAT=xml: must be text or json");
    err = env_fails("MJQ_LOG_LEVEL", "INFO");
    assert_string_equal(err.reason, "must be one of debug, info, warn, error");

    config_defaults(&cfg);
    assert_int_equal(config_set(&cfg, "log.level", "error", &err), 0);
    assert_int_equal(cfg.log_level, LOG_LEVEL_ERROR);
    assert_int_equal(config_set(&cfg, "log.format", "json", &err), 0);
    assert_int_equal(cfg.log_format, LOG_FORMAT_JSON);
    config_free(&cfg);
}

static void test_redis_urls(void **state)
{
    static const struct {
        const char *url, *host;
        int port;
        const char *unix_path, *user, *password;
        int db;
    } good[] = {
        {"redis://localhost", "localhost", 6379, NULL, NULL, NULL, 0},
        {"redis://localhost/", "localhost", 6379, NULL, NULL, NULL, 0},
        {"redis://10.0.0.1:7000/3", "10.0.0.1", 7000, NULL, NULL, NULL, 3},
        {"redis://[::1]:6390/1", "::1", 6390, NULL, NULL, NULL, 1},
        {"redis://:secret@h", "h", 6379, NULL, NULL, "secret", 0},
        {"redis://alice:p%40ss%3Aw%2Fd%25@h:1/15", "h", 1, NULL, "alice",
         "p@ss:w/d%", 15},
        {"redis://al%20ice:pw@h", "h", 6379, NULL, "al ice", "pw", 0},
        {"REDIS://h:65535", "h", 65535, NULL, NULL, NULL, 0},
        {"unix:///var/run/redis.sock", NULL, 0, "/var/run/redis.sock", NULL,
         NULL, 0},
        {"unix:///tmp/r.sock?db=4", NULL, 0, "/tmp/r.sock", NULL, NULL, 4},
        {"unix://:pw@/tmp/r.sock", NULL, 0, "/tmp/r.sock", NULL, "pw", 0},
    };
    static const struct {
        const char *url, *reason;
    } bad[] = {
        {"rediss://h:6380", "TLS to Redis is not supported by this build"},
        {"http://h:6379", "must start with redis:// or unix://"},
        {"localhost:6379", "must start with redis:// or unix://"},
        {"", "must start with redis:// or unix://"},
        {"redis://", "missing host"},
        {"redis://:6379", "missing host"},
        {"redis://h:0", "port: must be between 1 and 65535"},
        {"redis://h:65536", "port: must be between 1 and 65535"},
        {"redis://h:abc", "port: not an integer"},
        {"redis://h:", "port: not an integer"},
        {"redis://h/x", "database: not an integer"},
        {"redis://h/-1", "database: must be between 0 and 2147483647"},
        {"redis://h/0?x=1", "database: not an integer"},
        {"redis://[::1", "unterminated [ in host"},
        {"redis://secret@h", "credentials must be written user:password@ "
                             "or :password@"},
        {"redis://u:@h", "empty password"},
        {"redis://:p%zz@h", "bad %-escape in the credentials"},
        {"redis://:p%4@h", "bad %-escape in the credentials"},
        {"redis://:p%00@h", "bad %-escape in the credentials"},
        {"redis://h :1", "must not contain whitespace or control characters"},
        {"unix://tmp/r.sock", "socket path must be absolute: "
                              "unix:///path/to/redis.sock"},
        {"unix://", "socket path must be absolute: "
                    "unix:///path/to/redis.sock"},
        {"unix:///", "missing socket path"},
        {"unix:///tmp/r.sock?foo=1", "only ?db=N may follow the socket path"},
        {"unix:///tmp/r.sock?db=x", "database: not an integer"},
    };

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        struct config cfg;
        struct config_error err;

        config_defaults(&cfg);
        if (config_set(&cfg, "redis.url", good[i].url, &err) != 0)
            fail_msg("%s: %s", good[i].url, fmt(&err));
        assert_string_equal(cfg.redis_url, good[i].url);
        if (good[i].host != NULL)
            assert_string_equal(cfg.redis_host, good[i].host);
        else
            assert_null(cfg.redis_host);
        assert_int_equal(cfg.redis_port, good[i].port);
        if (good[i].unix_path != NULL)
            assert_string_equal(cfg.redis_unix_path, good[i].unix_path);
        else
            assert_null(cfg.redis_unix_path);
        if (good[i].user != NULL)
            assert_string_equal(cfg.redis_username, good[i].user);
        else
            assert_null(cfg.redis_username);
        if (good[i].password != NULL)
            assert_string_equal(cfg.redis_password, good[i].password);
        else
            assert_null(cfg.redis_password);
        assert_int_equal(cfg.redis_db, good[i].db);
        config_free(&cfg);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct config_error err = env_fails("MJQ_REDIS_URL", bad[i].url);

        if (strcmp(err.reason, bad[i].reason) != 0)
            fail_msg("%s: got \"%s\"", bad[i].url, fmt(&err));
        assert_string_equal(err.key, "MJQ_REDIS_URL");
    }
}

/* A bad URL keeps the previous value: no half-applied redis_* fields. */
static void test_redis_url_error_keeps_value(void **state)
{
    struct config cfg;
    struct config_error err;

    config_defaults(&cfg);
    assert_int_equal(config_set(&cfg, "redis.url", "redis://u:pw@h:1/2", &err),
                     0);
    assert_int_equal(config_set(&cfg, "redis.url", "redis://x:y@:0", &err), -1);
    assert_string_equal(cfg.redis_host, "h");
    assert_string_equal(cfg.redis_username, "u");
    assert_string_equal(cfg.redis_password, "pw");
    assert_int_equal(cfg.redis_port, 1);
    assert_int_equal(cfg.redis_db, 2);
    config_free(&cfg);
}

static void test_redis_password_masked(void **state)
{
    struct config cfg;
    struct config_error err;
    char *d;
    static const struct {
        const char *url, *shown;
    } bad[] = {
        {"redis://bob:s3cr3t@h:99999", "redis://bob:***@h:99999"},
        {"redis://:s3cr3t@h:0", "redis://:***@h:0"},
        {"redis://s3cr3t@h", "redis://***@h"},
        {"rediss://:s3cr3t@h", "rediss://:***@h"},
        {"redis://:s3/cr3t@h:x", "redis://:***@h:x"},
        {"redis://:s3@cr3t@:1", "redis://:***@:1"},
        {"bob:s3cr3t@h", "bob:***@h"},
        {"unix://:s3cr3t@tmp/s", "unix://:***@tmp/s"},
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err = env_fails("MJQ_REDIS_URL", bad[i].url);
        assert_string_equal(err.value, bad[i].shown);
        if (strstr(fmt(&err), "cr3t") != NULL)
            fail_msg("password leaked: %s", fmt(&err));
    }

    setenv("MJQ_REDIS_URL", "redis://bob:hunter2@h:7000/1", 1);
    assert_int_equal(config_load(&cfg, NULL, NULL, 0, &err), 0);
    d = dump(&cfg);
    assert_non_null(strstr(d, "redis.url = redis://bob:***@h:7000/1\n"));
    assert_null(strstr(d, "hunter2"));
    free(d);
    config_free(&cfg);

    /* A unix path may contain '@': no password, nothing to mask. */
    config_defaults(&cfg);
    assert_int_equal(
        config_set(&cfg, "redis.url", "unix:///tmp/a@b.sock", &err), 0);
    assert_string_equal(cfg.redis_unix_path, "/tmp/a@b.sock");
    d = dump(&cfg);
    assert_non_null(strstr(d, "redis.url = unix:///tmp/a@b.sock\n"));
    free(d);
    config_free(&cfg);
}

static void test_api_urls(void **state)
{
    static const struct {
        const char *url, *stored;
    } good[] = {
        {"http://127.0.0.1:8080", "http://127.0.0.1:8080"},
        {"https://api.example.com/", "https://api.example.com"},
        {"https://api.example.com/relay/v1//",
         "https://api.example.com/relay/v1"},
        {"HTTPS://[::1]:443/x", "HTTPS://[::1]:443/x"},
    };
    static const struct {
        const char *url, *reason;
    } bad[] = {
        {"ftp://h", "must start with http:// or https://"},
        {"api.example.com", "must start with http:// or https://"},
        {"", "must start with http:// or https://"},
        {"http://", "missing host"},
        {"http:///path", "missing host"},
        {"http://:80", "missing host"},
        {"http://h:0", "port: must be between 1 and 65535"},
        {"http://h:http", "port: not an integer"},
        {"http://[::1", "unterminated [ in host"},
        {"http://[::1]x/", "unexpected text after the host"},
        {"http://user:pw@h", "must not contain credentials; put the key in "
                             "api.key or api.key_file"},
        {"http://h/a?b=1", "must not contain a query or fragment (the API "
                           "routes are appended to it)"},
        {"http://h/#x", "must not contain a query or fragment (the API "
                        "routes are appended to it)"},
        {"http://h/a b", "must not contain whitespace or control characters"},
    };
    struct config_error err;

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        struct config cfg;

        config_defaults(&cfg);
        if (config_set(&cfg, "api.base_url", good[i].url, &err) != 0)
            fail_msg("%s: %s", good[i].url, fmt(&err));
        assert_string_equal(cfg.api.base_url, good[i].stored);
        config_free(&cfg);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err = env_fails("MJQ_API_BASE_URL", bad[i].url);
        if (strcmp(err.reason, bad[i].reason) != 0)
            fail_msg("%s: got \"%s\"", bad[i].url, fmt(&err));
    }
    /* Credentials in a rejected URL are not echoed either. */
    err = env_fails("MJQ_API_BASE_URL", "https://me:s3cr3t@h/");
    assert_string_equal(err.value, "https://me:***@h/");
    assert_null(strstr(fmt(&err), "s3cr3t"));
}

static void test_notify_hook_and_routes(void **state)
{
    struct config cfg;
    struct config_error err;

    config_defaults(&cfg);
    assert_int_equal(
        config_set(&cfg, "api.notify_hook", "http://hooks:9/cb?token=a", &err),
        0);
    assert_string_equal(cfg.notify_hook, "http://hooks:9/cb?token=a");
    assert_int_equal(config_set(&cfg, "api.notify_hook", "", &err), 0);
    assert_null(cfg.notify_hook);
    assert_int_equal(config_set(&cfg, "api.routes.relax", "/a/b", &err), 0);
    assert_string_equal(cfg.api.routes[MODE_RELAX], "/a/b");
    assert_int_equal(config_set(&cfg, "api.routes.relax", "", &err), 0);
    assert_string_equal(cfg.api.routes[MODE_RELAX], "");
    config_free(&cfg);

    err = env_fails("MJQ_NOTIFY_HOOK", "hooks.example/cb");
    assert_string_equal(err.reason, "must start with http:// or https://");
    err = env_fails("MJQ_NOTIFY_HOOK", "http://u:p@hooks/cb");
    assert_string_equal(err.reason, "must not contain credentials");
    err = env_fails("MJQ_ROUTE_FAST", "mj-fast");
    assert_string_equal(fmt(&err), "config: MJQ_ROUTE_FAST=mj-fast: must be "
                                   "empty or start with /");
    err = env_fails("MJQ_ROUTE_RELAX", "/mj-relax/");
    assert_string_equal(err.reason, "must not end with /");
    err = env_fails("MJQ_ROUTE_TURBO", "/");
    assert_string_equal(err.reason, "must not end with /");
    err = env_fails("MJQ_ROUTE_DEFAULT", "/a b");
    assert_string_equal(err.reason, "must not contain whitespace, control "
                                    "characters, ? or #");
    err = env_fails("MJQ_PREFIX", "");
    assert_string_equal(fmt(&err),
                        "config: MJQ_PREFIX=\"\": must be 1 to 64 characters");
    err = env_fails("MJQ_PREFIX", "my app:");
    assert_string_equal(err.reason,
                        "must not contain whitespace or control characters");
    err = env_fails("MJQ_PREFIX", "a\nb");
    assert_string_equal(err.value, "a?b"); /* one line, always */
    err = env_fails("MJQ_PREFIX", "p23456789012345678901234567890123456789"
                                  "01234567890123456789012345");
    assert_string_equal(err.reason, "must be 1 to 64 characters");
}

static void test_file_errors(void **state)
{
    struct config_error err;
    const char *path;
    char line[PATH_MAX + 128];

    /* Unknown key, with its line. */
    path = write_file("typo.conf", "worker:\n{\n    concurrency = 5;\n"
                                   "    concurency = 5;\n};\n");
    err = load_fails(path, NULL, 0);
    snprintf(line, sizeof(line),
             "config: worker.concurency: unknown setting (%s:4)", path);
    assert_string_equal(fmt(&err), line);
    assert_int_equal(err.line, 4);

    /* Unknown group, unknown top-level key, unknown nested group. */
    err = load_fails(write_file("g.conf", "wrker = { concurrency = 5; };"),
                     NULL, 0);
    assert_string_equal(err.key, "wrker");
    assert_string_equal(err.reason, "unknown setting");
    err = load_fails(write_file("g.conf", "\nkey = \"sk-abc\";"), NULL, 0);
    assert_string_equal(err.key, "key");
    assert_int_equal(err.line, 2);
    assert_string_equal(err.value, ""); /* could be a misplaced secret */
    err = load_fails(write_file("g.conf", "api = { routes = { slow = \"/s\"; "
                                          "}; };"),
                     NULL, 0);
    assert_string_equal(err.key, "api.routes.slow");
    assert_string_equal(err.reason, "unknown setting");

    /* A group given a value, a value given a group. */
    err = load_fails(write_file("g.conf", "worker = 5;"), NULL, 0);
    assert_string_equal(err.key, "worker");
    assert_string_equal(err.reason, "expected a group { ... }");
    err = load_fails(write_file("g.conf", "queues = { a = 1; };"), NULL, 0);
    assert_string_equal(err.reason,
                        "expected a list or a comma-separated string");

    /* Syntax error: libconfig's reason and line. */
    path = write_file("syntax.conf", "worker = {\n  concurrency = 5;\n"
                                     "  job_timeout_s = ;\n};\n");
    err = load_fails(path, NULL, 0);
    assert_string_equal(err.file, path);
    assert_int_equal(err.line, 3);
    assert_string_equal(err.key, "");
    snprintf(line, sizeof(line), "config: syntax error (%s:3)", path);
    assert_string_equal(fmt(&err), line);

    /* Missing file and a directory. */
    snprintf(line, sizeof(line), "%s/nope.conf", tmpdir);
    err = load_fails(line, NULL, 0);
    assert_string_equal(err.reason,
                        "cannot read the config file: No such file or "
                        "directory");
    assert_string_equal(err.file, line);
    err = load_fails(tmpdir, NULL, 0);
    assert_string_equal(err.reason, "the config file is not a regular file");
}

/* config_file_setting(): one setting of a file, the rest ignored. */
static void test_file_setting(void **state)
{
    struct config cfg;
    struct config_error err;
    const char *path;
    char line[PATH_MAX + 128];

    (void)state;
    config_defaults(&cfg);
    /* Set, with an invalid setting elsewhere that must not matter. */
    path = write_file("one.conf", "worker = { concurrency = 0; };\n"
                                  "admin = { listen = \"0.0.0.0:9187\"; };\n");
    assert_int_equal(config_file_setting(&cfg, path, "admin.listen", &err), 1);
    assert_string_equal(cfg.admin_listen, "0.0.0.0:9187");
    assert_string_equal(cfg.admin_host, "0.0.0.0");
    assert_int_equal(cfg.admin_port, 9187);
    assert_int_equal(cfg.concurrency, 100); /* untouched */

    /* Not set: 0, nothing changed. */
    path = write_file("one.conf", "log = { level = \"warn\"; };\n");
    assert_int_equal(config_file_setting(&cfg, path, "admin.listen", &err), 0);
    assert_string_equal(cfg.admin_listen, "0.0.0.0:9187");

    /* Invalid value: the key, the reason, the file and the line. */
    path = write_file("one.conf", "\nadmin:\n{\n  listen = \"nocolon\";\n};\n");
    assert_int_equal(config_file_setting(&cfg, path, "admin.listen", &err), -1);
    snprintf(line, sizeof(line),
             "config: admin.listen=nocolon: expected HOST:PORT, e.g. "
             "0.0.0.0:9187 (%s:4)",
             path);
    assert_string_equal(fmt(&err), line);
    assert_string_equal(cfg.admin_listen, "0.0.0.0:9187"); /* kept */

    /* Not a string. */
    path = write_file("one.conf", "admin = { listen = 9187; };\n");
    assert_int_equal(config_file_setting(&cfg, path, "admin.listen", &err), -1);
    assert_string_equal(err.key, "admin.listen");
    assert_string_equal(err.reason, "must be a string");
    assert_int_equal(err.line, 1);

    /* Syntax error and missing file, as config_load() says them. */
    path = write_file("one.conf", "admin = { listen = ; };\n");
    assert_int_equal(config_file_setting(&cfg, path, "admin.listen", &err), -1);
    assert_string_equal(err.file, path);
    assert_int_equal(err.line, 1);
    snprintf(line, sizeof(line), "%s/nope.conf", tmpdir);
    assert_int_equal(config_file_setting(&cfg, line, "admin.listen", &err), -1);
    assert_string_equal(err.reason,
                        "cannot read the config file: No such file or "
                        "directory");
    config_free(&cfg);
}

static void test_file_types(void **state)
{
    static const struct {
        const char *text, *key, *reason;
    } cases[] = {
        {"worker = { concurrency = 1.5; };", "worker.concurrency",
         "expected an integer"},
        {"worker = { concurrency = true; };", "worker.concurrency",
         "expected an integer"},
        {"worker = { concurrency = \"ten\"; };", "worker.concurrency",
         "not an integer"},
        {"worker = { concurrency = [1]; };", "worker.concurrency",
         "expected an integer"},
        {"redis = { prefix = 5; };", "redis.prefix", "expected a string"},
        {"log = { level = 1; };", "log.level", "expected a string"},
        {"queues = [1, 2];", "queues", "expected a list of strings"},
        {"queues = 7;", "queues",
         "expected a list or a comma-separated string"},
        {"worker = { poll_schedule_ms = [1.5]; };", "worker.poll_schedule_ms",
         "expected a list of integers"},
        {"worker = { poll_schedule_ms = (100, \"x\"); };",
         "worker.poll_schedule_ms", "\"x\": not an integer"},
        {"worker = { max_job_bytes = 1.0; };", "worker.max_job_bytes",
         "expected an integer"},
        {"results = { maxlen = 20000000000L; };", "results.maxlen",
         "must be between 1 and 10000000000"},
    };
    /* libconfig 1.5 wraps wide literals without L: refused, with a line. */
    static const struct {
        const char *text, *reason;
        int line;
    } wide[] = {
        {"events = { maxlen = 5000000000; };",
         "integer 5000000000 does not fit in 32 bits; write it 5000000000L", 1},
        {"# 99999999999 \"\n/* 99999999999\n */ redis = { prefix = "
         "\"99999999999\\\" 99999999999\"; };\n"
         "worker = { concurrency = 4294967297; };\n",
         "integer 4294967297 does not fit in 32 bits; write it 4294967297L", 4},
        {"worker = {\n concurrency = -2147483649; };",
         "integer -2147483649 does not fit in 32 bits; write it "
         "-2147483649L",
         2},
        {"worker = { concurrency = 0x100000001; };",
         "integer 0x100000001 does not fit in 32 bits; write it "
         "0x100000001L",
         1},
        {"worker = { concurrency = 99999999999999999999; };",
         "integer 99999999999999999999 does not fit in 32 bits; write it "
         "99999999999999999999L",
         1},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct config_error err =
            load_fails(write_file("t.conf", cases[i].text), NULL, 0);

        if (strcmp(err.reason, cases[i].reason) != 0 ||
            strcmp(err.key, cases[i].key) != 0 || err.line != 1)
            fail_msg("%s: got \"%s\"", cases[i].text, fmt(&err));
    }
    for (size_t i = 0; i < sizeof(wide) / sizeof(wide[0]); i++) {
        struct config_error err =
            load_fails(write_file("t.conf", wide[i].text), NULL, 0);

        if (strcmp(err.reason, wide[i].reason) != 0 ||
            err.line != wide[i].line || err.key[0] != '\0')
            fail_msg("%s: got \"%s\"", wide[i].text, fmt(&err));
    }
}

static void test_queues(void **state)
{
    static const struct {
        const char *value, *reason;
    } bad[] = {
        {"", "at least one queue is required"},
        {" ", "at least one queue is required"},
        {"a,,b", "empty queue name"},
        {"a,", "empty queue name"},
        {"high,low,high", "duplicate queue \"high\""},
        {"a b", "queue name \"a b\": byte 0x20 is not allowed (use "
                "A-Z a-z 0-9 . _ : -)"},
        {"ok,bad/name", "queue name \"bad/name\": '/' is not allowed (use "
                        "A-Z a-z 0-9 . _ : -)"},
        {"caf\xc3\xa9", "queue name \"caf\xc3\xa9\": byte 0xc3 is not allowed "
                        "(use A-Z a-z 0-9 . _ : -)"},
        {"q1,q2,q3,q4,q5,q6,q7,q8,q9,q10,q11,q12,q13,q14,q15,q16,q17",
         "at most 16 queues"},
        {"a2345678901234567890123456789012345678901234567890123456789012345",
         "queue name \"a2345678901234567890...\" is longer than 64 "
         "characters"},
    };
    struct config cfg;
    struct config_error err;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err = env_fails("MJQ_QUEUES", bad[i].value);
        if (strcmp(err.reason, bad[i].reason) != 0)
            fail_msg("%s: got \"%s\"", bad[i].value, fmt(&err));
    }
    /* The file's list form checks each element: no comma smuggling. */
    err = load_fails(write_file("q.conf", "queues = [\"a,b\"];"), NULL, 0);
    assert_string_equal(err.reason, "queue name \"a,b\": ',' is not allowed "
                                    "(use A-Z a-z 0-9 . _ : -)");
    err = load_fails(write_file("q.conf", "queues = [\"a\", \"a\"];"), NULL, 0);
    assert_string_equal(err.value, "a,a");
    assert_string_equal(err.reason, "duplicate queue \"a\"");
    assert_int_equal(err.line, 1);
    err = load_fails(write_file("q.conf", "queues = [];"), NULL, 0);
    assert_string_equal(err.reason, "at least one queue is required");

    config_defaults(&cfg);
    assert_int_equal(config_set(&cfg, "queues",
                                "Aa.0_:-,q2,q3,q4,q5,q6,q7,q8,q9,q10,q11,"
                                "q12,q13,q14,q15,q16",
                                &err),
                     0);
    assert_int_equal(cfg.nqueues, 16);
    assert_string_equal(cfg.queues[0], "Aa.0_:-");
    assert_string_equal(cfg.queues[15], "q16");
    config_free(&cfg);
}

static void test_poll_schedule(void **state)
{
    struct config cfg;
    struct config_error err;

    err = env_fails("MJQ_POLL_SCHEDULE_MS", "");
    assert_string_equal(fmt(&err), "config: MJQ_POLL_SCHEDULE_MS=\"\": at "
                                   "least one poll delay is required");
    err = load_fails(write_file("p.conf", "worker = { poll_schedule_ms = []; "
                                          "};"),
                     NULL, 0);
    assert_string_equal(err.reason, "at least one poll delay is required");
    err = env_fails("MJQ_POLL_SCHEDULE_MS", "100,,200");
    assert_string_equal(err.reason, "\"\": not an integer");
    err = env_fails("MJQ_POLL_SCHEDULE_MS", "100,3600001");
    assert_string_equal(err.reason,
                        "\"3600001\": must be between 0 and 3600000");
    err = env_fails("MJQ_POLL_SCHEDULE_MS", "1,2,3,4,5,6,7,8,9,10,11,12,13,"
                                            "14,15,16,17,18,19,20,21,22,23,"
                                            "24,25,26,27,28,29,30,31,32,33");
    assert_string_equal(err.reason, "at most 32 poll delays");

    /* "0" alone polls at once: valid. */
    setenv("MJQ_POLL_SCHEDULE_MS", "0", 1);
    assert_int_equal(config_load(&cfg, NULL, NULL, 0, &err), 0);
    assert_int_equal(cfg.npoll_schedule, 1);
    assert_int_equal(cfg.poll_schedule_ms[0], 0);
    config_free(&cfg);
    unsetenv("MJQ_POLL_SCHEDULE_MS");

    /* The file takes a string too. */
    if (config_load(&cfg,
                    write_file("p.conf", "worker = { poll_schedule_ms = "
                                         "\"10, 20,30\"; };"),
                    NULL, 0, &err) != 0)
        fail_msg("%s", fmt(&err));
    assert_int_equal(cfg.npoll_schedule, 3);
    assert_int_equal(cfg.poll_schedule_ms[0], 10);
    assert_int_equal(cfg.poll_schedule_ms[2], 30);
    config_free(&cfg);
}

static void test_sizes(void **state)
{
    static const struct {
        const char *value;
        long bytes;
    } good[] = {
        {"1024", 1024},        {"1k", 1024},
        {"4K", 4096},          {"512KiB", 524288},
        {"1m", 1048576},       {"32M", 33554432},
        {"512MiB", 536870912}, {"536870912", 536870912},
    };
    static const struct {
        const char *value, *reason;
    } bad[] = {
        {"1023", "must be between 1024 and 536870912 bytes"},
        {"513M", "must be between 1024 and 536870912 bytes"},
        {"0k", "must be between 1024 and 536870912 bytes"},
        {"9999999999999999M", "must be between 1024 and 536870912 bytes"},
        {"32MB", "not a size (bytes, or a number with suffix k, K, KiB, m, "
                 "M or MiB)"},
        {"32 M", "not a size (bytes, or a number with suffix k, K, KiB, m, "
                 "M or MiB)"},
        {"1G", "not a size (bytes, or a number with suffix k, K, KiB, m, "
               "M or MiB)"},
        {"M", "not an integer"},
        {"", "not an integer"},
    };
    struct config_error err;

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        struct config cfg;

        config_defaults(&cfg);
        if (config_set(&cfg, "worker.max_job_bytes", good[i].value, &err) != 0)
            fail_msg("%s: %s", good[i].value, fmt(&err));
        assert_int_equal(cfg.max_job_bytes, good[i].bytes);
        config_free(&cfg);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err = env_fails("MJQ_MAX_JOB_BYTES", bad[i].value);
        if (strcmp(err.reason, bad[i].reason) != 0)
            fail_msg("%s: got \"%s\"", bad[i].value, fmt(&err));
    }
}

static void test_cross_field(void **state)
{
    struct config cfg;
    struct config_error err;
    char *flags[] = {"worker.retry_base_ms=5000"};
    const char *path;
    char line[PATH_MAX + 128];

    /* The setting changed on the higher layer takes the blame. */
    err = env_fails("MJQ_RETRY_MAX_MS", "500");
    assert_string_equal(fmt(&err), "config: MJQ_RETRY_MAX_MS=500: must be "
                                   ">= worker.retry_base_ms (1000)");
    err = env_fails("MJQ_RETRY_BASE_MS", "40000");
    assert_string_equal(fmt(&err), "config: MJQ_RETRY_BASE_MS=40000: must "
                                   "be <= worker.retry_max_ms (30000)");
    path = write_file("x.conf", "worker = {\n retry_max_ms = 2000;\n};\n");
    err = load_fails(path, flags, 1);
    assert_string_equal(fmt(&err), "config: --retry-base-ms=5000: must be "
                                   "<= worker.retry_max_ms (2000)");
    path = write_file("x.conf", "worker = {\n heartbeat_ms = 3000;\n"
                                " heartbeat_ttl_ms = 3000;\n};\n");
    err = load_fails(path, NULL, 0);
    snprintf(line, sizeof(line),
             "config: worker.heartbeat_ttl_ms=3000: must be > "
             "worker.heartbeat_ms (3000) (%s:3)",
             path);
    assert_string_equal(fmt(&err), line);
    err = env_fails("MJQ_HEARTBEAT_MS", "6000");
    assert_string_equal(fmt(&err), "config: MJQ_HEARTBEAT_MS=6000: must be "
                                   "< worker.heartbeat_ttl_ms (6000)");

    /* Equal retry delays are fine; so is a TTL just above the period. */
    setenv("MJQ_RETRY_BASE_MS", "30000", 1);
    setenv("MJQ_HEARTBEAT_TTL_MS", "2001", 1);
    assert_int_equal(config_load(&cfg, NULL, NULL, 0, &err), 0);
    config_free(&cfg);
}

static void test_key_file(void **state)
{
    struct config cfg;
    struct config_error err;
    const char *path = write_file("key", "sk-FILEKEY123\n\n  \t\n");
    char missing[PATH_MAX + 32], line[PATH_MAX + 256];
    char *d;

    setenv("MJQ_API_KEY_FILE", path, 1);
    assert_int_equal(config_load(&cfg, NULL, NULL, 0, &err), 0);
    assert_string_equal(cfg.api.key, "sk-FILEKEY123");
    assert_string_equal(cfg.api.key_file, path);
    d = dump(&cfg);
    assert_non_null(strstr(d, "api.key = (set)\n"));
    assert_null(strstr(d, "FILEKEY"));
    free(d);
    config_free(&cfg);

    /* Missing: names the file (and how it was given) and errno. */
    snprintf(missing, sizeof(missing), "%s/no-such-key", tmpdir);
    err = env_fails("MJQ_API_KEY_FILE", missing);
    snprintf(line, sizeof(line),
             "config: MJQ_API_KEY_FILE=%s: cannot read the key file: No such "
             "file or directory",
             missing);
    assert_string_equal(fmt(&err), line);

    /* Unreadable (only testable when not root). */
    if (geteuid() != 0) {
        path = write_file("key", "sk-UNREADABLE\n");
        assert_int_equal(chmod(path, 0), 0);
        err = env_fails("MJQ_API_KEY_FILE", path);
        assert_string_equal(err.reason,
                            "cannot read the key file: Permission denied");
        assert_null(strstr(fmt(&err), "UNREADABLE"));
        chmod(path, 0600);
    }

    /* Readable but wrong: the message never quotes the content. */
    path = write_file("key", "sk-TOPSECRET with space\n");
    err = env_fails("MJQ_API_KEY_FILE", path);
    assert_string_equal(err.reason, "the key in the file contains whitespace "
                                    "or control characters");
    assert_string_equal(err.value, path);
    assert_null(strstr(fmt(&err), "TOPSECRET"));
    path = write_file("key", " \n\n");
    err = env_fails("MJQ_API_KEY_FILE", path);
    assert_string_equal(err.reason, "the key file is empty");
    err = env_fails("MJQ_API_KEY_FILE", tmpdir);
    assert_string_equal(err.reason, "the key file is not a regular file");
    err = env_fails("MJQ_API_KEY_FILE", "");
    assert_string_equal(fmt(&err),
                        "config: MJQ_API_KEY_FILE=\"\": must not be empty");

    /* From the file, the error points at the file's line. */
    snprintf(line, sizeof(line), "api = {\n  key_file = \"%s\";\n};\n",
             missing);
    path = write_file("kf.conf", line);
    err = load_fails(path, NULL, 0);
    assert_string_equal(err.key, "api.key_file");
    assert_int_equal(err.line, 2);

    /* config_set reads it at once. */
    path = write_file("key", "sk-SET\n");
    config_defaults(&cfg);
    assert_int_equal(config_set(&cfg, "api.key_file", path, &err), 0);
    assert_string_equal(cfg.api.key, "sk-SET");
    assert_int_equal(config_set(&cfg, "api.key_file", missing, &err), -1);
    assert_string_equal(cfg.api.key, "sk-SET"); /* unchanged on error */
    assert_string_equal(cfg.api.key_file, path);
    assert_int_equal(config_set(&cfg, "api.key", "sk-DIRECT", &err), 0);
    assert_string_equal(cfg.api.key, "sk-DIRECT");
    assert_null(cfg.api.key_file);
    config_free(&cfg);
}

static void test_key_and_key_file(void **state)
{
    struct config cfg;
    struct config_error err;
    const char *key = write_file("key2", "sk-FROMFILE\n");
    char text[PATH_MAX + 128], missing[PATH_MAX + 32];
    const char *path;

    /* Both on one layer: an error, whichever layer. */
    snprintf(text, sizeof(text),
             "api = {\n  key = \"sk-INLINE\";\n  key_file = \"%s\";\n};\n",
             key);
    path = write_file("both.conf", text);
    err = load_fails(path, NULL, 0);
    assert_string_equal(err.key, "api.key_file");
    assert_string_equal(err.reason, "set only one of api.key and api.key_file");
    assert_null(strstr(fmt(&err), "INLINE"));

    setenv("MJQ_API_KEY", "sk-ENV", 1);
    setenv("MJQ_API_KEY_FILE", key, 1);
    err = load_fails(NULL, NULL, 0);
    assert_string_equal(err.key, "MJQ_API_KEY_FILE");
    assert_string_equal(err.reason, "set only one of api.key and api.key_file");
    clear_env();

    /* Different layers: the higher wins. */
    path = write_file("k.conf", "api = { key = \"sk-INFILE\"; };");
    setenv("MJQ_API_KEY_FILE", key, 1);
    assert_int_equal(config_load(&cfg, path, NULL, 0, &err), 0);
    assert_string_equal(cfg.api.key, "sk-FROMFILE");
    assert_string_equal(cfg.api.key_file, key);
    config_free(&cfg);
    clear_env();

    /* The env key beats a file key_file, which is then not even read. */
    snprintf(missing, sizeof(missing), "%s/absent", tmpdir);
    snprintf(text, sizeof(text), "api = { key_file = \"%s\"; };", missing);
    path = write_file("kf2.conf", text);
    setenv("MJQ_API_KEY", "sk-ENV", 1);
    assert_int_equal(config_load(&cfg, path, NULL, 0, &err), 0);
    assert_string_equal(cfg.api.key, "sk-ENV");
    assert_null(cfg.api.key_file);
    config_free(&cfg);

    /* A key_file flag beats the env key. */
    snprintf(text, sizeof(text), "api.key_file=%s", key);
    {
        char *flags[] = {text};

        assert_int_equal(config_load(&cfg, NULL, flags, 1, &err), 0);
        assert_string_equal(cfg.api.key, "sk-FROMFILE");
        config_free(&cfg);
    }
}

static void test_secret_never_shown(void **state)
{
    struct config cfg;
    struct config_error err;
    char *flags[] = {"api.key=sk-TOPSECRET"};
    char *d;

    err = load_fails(write_file("s.conf", "api = { key = \"sk-TOPSECRET "
                                          "x\"; };"),
                     NULL, 0);
    assert_string_equal(err.value, "(secret)");
    assert_string_equal(err.reason,
                        "must not contain whitespace or control characters");
    assert_null(strstr(fmt(&err), "TOPSECRET"));

    err = env_fails("MJQ_API_KEY", "sk-TOPSECRET\r\nX-Evil: 1");
    assert_string_equal(fmt(&err), "config: MJQ_API_KEY=(secret): must not "
                                   "contain whitespace or control characters");
    err = env_fails("MJQ_API_KEY", "");
    assert_string_equal(err.value, "(secret)");
    assert_string_equal(err.reason,
                        "must not be empty (leave it unset to send no key)");
    err = set_fails("api.key", "sk-TOPSECRET x");
    assert_string_equal(err.value, "(secret)");

    /* Never on the command line, even when valid. */
    err = load_fails(NULL, flags, 1);
    assert_string_equal(fmt(&err), "config: api.key=(secret): cannot be "
                                   "given on the command line; use "
                                   "MJQ_API_KEY or the file");

    setenv("MJQ_API_KEY", "sk-TOPSECRET", 1);
    assert_int_equal(config_load(&cfg, NULL, NULL, 0, &err), 0);
    assert_string_equal(cfg.api.key, "sk-TOPSECRET");
    d = dump(&cfg);
    assert_non_null(strstr(d, "api.key = (set)\n"));
    assert_non_null(strstr(d, "api.key_file = (none)\n"));
    assert_null(strstr(d, "TOPSECRET"));
    free(d);
    config_free(&cfg);
    config_defaults(&cfg);
    d = dump(&cfg);
    assert_non_null(strstr(d, "api.key = (unset)\n"));
    free(d);
    config_free(&cfg);
}

static void test_dump(void **state)
{
    struct config cfg;
    char *d;
    char out[PATH_MAX + 32];
    int saved, fd;
    FILE *f;
    char buf[8192];
    size_t n;

    config_defaults(&cfg);
    d = dump(&cfg);
    assert_string_equal(d, "redis.url = redis://127.0.0.1:6379/0\n"
                           "redis.prefix = mjq:\n"
                           "queues = default\n"
                           "api.base_url = http://127.0.0.1:8080\n"
                           "api.key = (unset)\n"
                           "api.key_file = (none)\n"
                           "api.auth = bearer\n"
                           "api.timeout_ms = 30000\n"
                           "api.connect_timeout_ms = 5000\n"
                           "api.notify_hook = (none)\n"
                           "api.routes.default = \"\"\n"
                           "api.routes.fast = /mj-fast\n"
                           "api.routes.relax = /mj-relax\n"
                           "api.routes.turbo = /mj-turbo\n"
                           "api.modes = default,fast,relax,turbo\n"
                           "api.max_in_flight = 0\n"
                           "api.limits.default = 0\n"
                           "api.limits.fast = 0\n"
                           "api.limits.relax = 0\n"
                           "api.limits.turbo = 0\n"
                           "api.batch_fetch = false\n"
                           "api.batch_size = 100\n"
                           "api.batch_window_ms = 500\n"
                           "api.min_poll_interval_ms = 0\n"
                           "api.breaker_failures = 5\n"
                           "api.breaker_open_ms = 10000\n"
                           "api.probe_interval_ms = 60000\n"
                           "worker.concurrency = 100\n"
                           "worker.poll_schedule_ms = 2000,4000,8000\n"
                           "worker.job_timeout_s = 600\n"
                           "worker.job_timeout_fast_s = 600\n"
                           "worker.job_timeout_relax_s = 3600\n"
                           "worker.job_timeout_turbo_s = 600\n"
                           "worker.task_owner_ttl_s = 2592000\n"
                           "worker.dedup_window_s = 86400\n"
                           "worker.max_job_bytes = 33554432\n"
                           "worker.submit_max_attempts = 8\n"
                           "worker.retry_base_ms = 1000\n"
                           "worker.retry_max_ms = 30000\n"
                           "worker.lost_after_not_found = 3\n"
                           "worker.max_recoveries = 3\n"
                           "worker.heartbeat_ms = 2000\n"
                           "worker.heartbeat_ttl_ms = 6000\n"
                           "worker.shutdown_timeout_s = 10\n"
                           "results.maxlen = 1000000\n"
                           "events.maxlen = 100000\n"
                           "supervisor.workers = 1\n"
                           "supervisor.sweep_interval_ms = 2000\n"
                           "admin.listen = (none)\n"
                           "log.level = info\n"
                           "log.format = text\n");
    free(d);

    /* config_dump() is the same, on stdout. */
    snprintf(out, sizeof(out), "%s/stdout", tmpdir);
    fflush(stdout);
    saved = dup(STDOUT_FILENO);
    fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(saved >= 0 && fd >= 0);
    dup2(fd, STDOUT_FILENO);
    close(fd);
    config_dump(&cfg);
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    f = fopen(out, "r");
    assert_non_null(f);
    n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    d = dump(&cfg);
    assert_string_equal(buf, d);
    free(d);
    config_free(&cfg);
}

/* Every dumped value, fed back as flags, gives the same config. */
static void test_dump_round_trip(void **state)
{
    struct config cfg, again;
    struct config_error err;
    char *flags[64], *d, *d2, *line, *save = NULL;
    size_t n = 0;
    const char *path =
        write_file("rt.conf", "queues = [\"a\", \"b\"];\n"
                              "worker = { poll_schedule_ms = [0, 5]; "
                              "max_job_bytes = \"1M\"; };\n"
                              "api = { notify_hook = \"http://h/x\"; "
                              "routes = { relax = \"\"; }; };\n"
                              "log = { format = \"json\"; };\n");

    if (config_load(&cfg, path, NULL, 0, &err) != 0)
        fail_msg("%s", fmt(&err));
    d = dump(&cfg);
    for (line = strtok_r(d, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        char *eq = strstr(line, " = ");
        char *value = eq + 3;

        if (strcmp(value, "(none)") == 0 || strcmp(value, "(unset)") == 0)
            continue;
        if (strcmp(value, "\"\"") == 0)
            value[0] = '\0';
        memmove(eq + 1, value, strlen(value) + 1);
        eq[0] = '=';
        flags[n++] = line;
    }
    assert_int_equal(config_load(&again, NULL, flags, n, &err), 0);
    free(d);
    d = dump(&cfg);
    d2 = dump(&again);
    assert_string_equal(d, d2);
    free(d);
    free(d2);
    config_free(&again);
    config_free(&cfg);
}

static void test_flag_errors(void **state)
{
    struct config_error err;
    char *noeq[] = {"worker.concurrency"};
    char *unknown[] = {"worker.nope=1"};
    char *groupkey[] = {"worker=1"};

    err = load_fails(NULL, noeq, 1);
    assert_string_equal(fmt(&err),
                        "config: worker.concurrency: expected key=value");
    err = load_fails(NULL, unknown, 1);
    assert_string_equal(fmt(&err), "config: worker.nope: unknown setting");
    err = load_fails(NULL, groupkey, 1);
    assert_string_equal(err.reason, "unknown setting");
    err = set_fails("worker.nope", "1");
    assert_string_equal(fmt(&err), "config: worker.nope: unknown setting");
}

static void test_mjq_config_env(void **state)
{
    struct config cfg;
    struct config_error err;
    const char *path =
        write_file("envpath.conf", "supervisor = { workers = 3; };");
    const char *other =
        write_file("other.conf", "supervisor = { workers = 5; };");

    setenv("MJQ_CONFIG", path, 1);
    assert_int_equal(config_load(&cfg, NULL, NULL, 0, &err), 0);
    assert_int_equal(cfg.workers, 3);
    assert_string_equal(cfg.config_path, path);
    config_free(&cfg);

    /* An explicit path wins over MJQ_CONFIG. */
    assert_int_equal(config_load(&cfg, other, NULL, 0, &err), 0);
    assert_int_equal(cfg.workers, 5);
    assert_string_equal(cfg.config_path, other);
    config_free(&cfg);

    /* Empty MJQ_CONFIG: no file. */
    setenv("MJQ_CONFIG", "", 1);
    assert_int_equal(config_load(&cfg, NULL, NULL, 0, &err), 0);
    assert_null(cfg.config_path);
    assert_int_equal(cfg.workers, 1);
    config_free(&cfg);
}

static void test_free_twice(void **state)
{
    struct config cfg;
    struct config_error err;
    const struct config zero = {0};

    config_free(NULL);
    setenv("MJQ_REDIS_URL", "redis://u:p@h/1", 1);
    setenv("MJQ_API_KEY", "k", 1);
    setenv("MJQ_NOTIFY_HOOK", "http://h/", 1);
    assert_int_equal(config_load(&cfg, NULL, NULL, 0, &err), 0);
    config_free(&cfg);
    assert_memory_equal(&cfg, &zero, sizeof(cfg));
    config_free(&cfg); /* twice: safe */
    assert_memory_equal(&cfg, &zero, sizeof(cfg));

    /* Reusable after free, and after a failed load. */
    setenv("MJQ_WORKERS", "0", 1);
    assert_int_equal(config_load(&cfg, NULL, NULL, 0, &err), -1);
    config_free(&cfg);
    config_free(&cfg);
    unsetenv("MJQ_WORKERS");
    assert_int_equal(config_load(&cfg, NULL, NULL, 0, &err), 0);
    assert_string_equal(cfg.redis_password, "p");
    config_free(&cfg);
}

static void test_usage(void **state)
{
    char *buf = NULL, *line, *save = NULL;
    size_t len = 0, lines = 0;
    FILE *f = open_memstream(&buf, &len);
    static const char *const expect[] = {
        "--redis-url URL",
        "MJQ_REDIS_URL",
        "redis.url",
        "--concurrency N",
        "MJQ_CONCURRENCY",
        "worker.concurrency",
        "(no flag)",
        "MJQ_API_KEY",
        "api.key",
        "--max-job-bytes BYTES",
        "(default: 33554432)",
        "(default: redis://127.0.0.1:6379/0)",
        "(default: none)",
        "MJQ_ROUTE_TURBO",
        "(default: /mj-turbo)",
        "log.format",
    };

    assert_non_null(f);
    config_usage(f);
    fclose(f);
    for (size_t i = 0; i < sizeof(expect) / sizeof(expect[0]); i++) {
        if (strstr(buf, expect[i]) == NULL)
            fail_msg("usage lacks %s", expect[i]);
    }
    for (line = strtok_r(buf, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        if (strlen(line) > 100)
            fail_msg("usage line longer than 100 columns: %s", line);
        lines++;
    }
    assert_true(lines >= 2 * 30);
    free(buf);
}

/* Without `upstreams` the one account is api.*, named "default". */
static void test_default_account(void **state)
{
    struct config cfg;
    struct config_error err;

    setenv("MJQ_API_KEY", "sk-env", 1);
    setenv("MJQ_API_MAX_IN_FLIGHT", "13", 1);
    setenv("MJQ_API_MODES", "relax, fast", 1);
    setenv("MJQ_API_BATCH_FETCH", "yes", 1);
    if (config_load(&cfg, NULL, NULL, 0, &err) != 0)
        fail_msg("%s", fmt(&err));
    assert_int_equal(cfg.naccounts, 1);
    assert_string_equal(cfg.accounts[0].name, "default");
    assert_string_equal(cfg.accounts[0].key, "sk-env");
    assert_string_equal(cfg.accounts[0].base_url, "http://127.0.0.1:8080");
    assert_int_equal(cfg.accounts[0].max_in_flight, 13);
    assert_int_equal(cfg.accounts[0].modes,
                     (1u << MODE_FAST) | (1u << MODE_RELAX));
    assert_int_equal(cfg.accounts[0].batch_fetch, 1);
    assert_int_equal(cfg.mode_timeout_s[MODE_RELAX], 3600);
    assert_int_equal(cfg.mode_timeout_s[MODE_FAST], 600);
    config_free(&cfg);
}

/* Each entry overrides what it names and inherits the rest of api.*. */
static void test_upstreams(void **state)
{
    struct config cfg;
    struct config_error err;
    const char *keyf = write_file("b.key", "sk-from-file\n");
    char text[2048];
    const char *path;
    char *d;

    snprintf(text, sizeof(text),
             "api = { timeout_ms = 12000; key = \"sk-api\";\n"
             "        limits = { relax = 4; }; };\n"
             "upstreams = (\n"
             "  { name = \"main\"; base_url = \"https://a.example/\";\n"
             "    modes = [\"fast\", \"relax\"]; max_in_flight = 13;\n"
             "    limits = { fast = 3; }; routes = { fast = \"/f\"; }; },\n"
             "  { name = \"b-2\"; base_url = \"http://b.example:81\";\n"
             "    key_file = \"%s\"; batch_fetch = true;\n"
             "    min_poll_interval_ms = 5000; },\n"
             "  { name = \"c\"; base_url = \"http://c.example\";\n"
             "    key_env = \"MJ_KEY_C\"; modes = \"relax\"; }\n"
             ");\n",
             keyf);
    path = write_file("up.conf", text);
    setenv("MJ_KEY_C", "sk-c", 1);
    setenv("MJQ_API_CONNECT_TIMEOUT_MS", "700", 1); /* reaches every entry */
    if (config_load(&cfg, path, NULL, 0, &err) != 0)
        fail_msg("%s", fmt(&err));
    unsetenv("MJ_KEY_C");
    assert_int_equal(cfg.naccounts, 3);
    assert_string_equal(cfg.accounts[0].name, "main");
    assert_string_equal(cfg.accounts[0].base_url, "https://a.example");
    assert_string_equal(cfg.accounts[0].key, "sk-api");
    assert_int_equal(cfg.accounts[0].timeout_ms, 12000);
    assert_int_equal(cfg.accounts[0].connect_timeout_ms, 700);
    assert_int_equal(cfg.accounts[0].modes,
                     (1u << MODE_FAST) | (1u << MODE_RELAX));
    assert_int_equal(cfg.accounts[0].max_in_flight, 13);
    assert_int_equal(cfg.accounts[0].mode_limit[MODE_FAST], 3);
    assert_int_equal(cfg.accounts[0].mode_limit[MODE_RELAX], 4);
    assert_string_equal(cfg.accounts[0].routes[MODE_FAST], "/f");
    assert_string_equal(cfg.accounts[0].routes[MODE_RELAX], "/mj-relax");
    assert_string_equal(cfg.accounts[1].name, "b-2");
    assert_string_equal(cfg.accounts[1].key, "sk-from-file");
    assert_int_equal(cfg.accounts[1].batch_fetch, 1);
    assert_int_equal(cfg.accounts[1].min_poll_interval_ms, 5000);
    assert_int_equal(cfg.accounts[1].max_in_flight, 0);
    assert_int_equal(cfg.accounts[1].modes, 0xfu);
    assert_string_equal(cfg.accounts[2].key, "sk-c");
    assert_string_equal(cfg.accounts[2].key_env, "MJ_KEY_C");
    assert_int_equal(cfg.accounts[2].modes, 1u << MODE_RELAX);
    /* The dump lists the accounts and never a key. */
    d = dump(&cfg);
    assert_non_null(strstr(d, "upstreams.main = https://a.example key (set)"));
    assert_non_null(strstr(d, "upstreams.c = http://c.example key (set), "
                              "modes relax"));
    assert_null(strstr(d, "sk-"));
    free(d);
    config_free(&cfg);
}

static void test_upstreams_errors(void **state)
{
    static const struct {
        const char *text, *msg;
    } cases[] = {
        {"upstreams = ();",
         "config: upstreams: at least one account is required (%s:1)"},
        {"upstreams = ( { base_url = \"http://a\"; } );",
         "config: upstreams[0].name: every upstream account needs a name "
         "(%s:1)"},
        {"upstreams = ( { name = \"a\"; },\n { name = \"a\"; } );",
         "config: upstreams[1].name=a: two upstream accounts are named \"a\" "
         "(%s:2)"},
        {"upstreams = ( { name = \"a b\"; } );",
         "config: upstreams[0].name: use only A-Z a-z 0-9 . _ - in account "
         "names (%s:1)"},
        {"upstreams = ( { name = \"a\";\n bogus = 1; } );",
         "config: upstreams[0].bogus: unknown setting of an upstream account "
         "(%s:2)"},
        {"upstreams = ( { name = \"a\";\n notify_hook = \"http://x\"; } );",
         "config: upstreams[0].notify_hook: unknown setting of an upstream "
         "account (%s:2)"},
        {"upstreams = ( { name = \"a\";\n max_in_flight = -1; } );",
         "config: upstreams[0].max_in_flight=-1: must be between 0 and "
         "1000000 (%s:2)"},
        {"upstreams = ( { name = \"a\";\n limits = { slow = 1; }; } );",
         "config: upstreams[0].limits.slow: unknown setting of an upstream "
         "account (%s:2)"},
        {"upstreams = ( { name = \"a\";\n modes = [\"fast\", \"warp\"]; } );",
         "config: upstreams[0].modes=fast,warp: \"warp\" is not a mode "
         "(default, fast, relax, turbo) (%s:2)"},
        {"upstreams = ( { name = \"a\";\n base_url = \"ftp://x\"; } );",
         "config: upstreams[0].base_url=ftp://x: must start with http:// or "
         "https:// (%s:2)"},
        {"upstreams = ( { name = \"a\"; key = \"k\";\n key_env = \"K\"; } "
         ");",
         "config: upstreams[0]: set only one of key, key_file and key_env "
         "(%s:1)"},
        {"upstreams = ( { name = \"a\"; key_env = \"MJQ_TEST_UNSET\"; } );",
         "config: upstreams[0].key_env: environment variable MJQ_TEST_UNSET "
         "is not set (%s:1)"},
        {"upstreams = { name = \"a\"; };",
         "config: upstreams: expected a list of groups: ( { name = ...; "
         "base_url = ...; }, ... ) (%s:1)"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *path = write_file("bad-up.conf", cases[i].text);
        struct config_error err = load_fails(path, NULL, 0);
        char want[512];

        const char *at = strstr(cases[i].msg, "%s");

        /* cases[i].msg names the file as %s: put the path there. */
        snprintf(want, sizeof(want), "%.*s%s%s", (int)(at - cases[i].msg),
                 cases[i].msg, path, at + 2);
        assert_string_equal(fmt(&err), want);
    }
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, test_setup, test_teardown)
    const struct CMUnitTest tests[] = {
        T(test_defaults),
        T(test_shipped_conf),
        T(test_shipped_conf_is_complete),
        T(test_file_overrides_defaults),
        T(test_env_overrides_file),
        T(test_flags_override_env),
        T(test_same_reason_every_source),
        T(test_bad_integers),
        T(test_bad_enums),
        T(test_redis_urls),
        T(test_redis_url_error_keeps_value),
        T(test_redis_password_masked),
        T(test_api_urls),
        T(test_notify_hook_and_routes),
        T(test_file_errors),
        T(test_file_types),
        T(test_file_setting),
        T(test_queues),
        T(test_poll_schedule),
        T(test_sizes),
        T(test_cross_field),
        T(test_key_file),
        T(test_key_and_key_file),
        T(test_secret_never_shown),
        T(test_dump),
        T(test_dump_round_trip),
        T(test_flag_errors),
        T(test_mjq_config_env),
        T(test_free_twice),
        T(test_usage),
        T(test_default_account),
        T(test_upstreams),
        T(test_upstreams_errors),
    };
#undef T

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
