/* Unit tests for src/admin.c (the HTTP endpoint, driven by an in-process
 * evhttp client on the same loop) and the admin.listen setting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include "admin.h"
#include "config.h"

/* ---- admin.listen ------------------------------------------------------- */

static void expect_error(const char *value, const char *reason)
{
    struct config cfg;
    struct config_error err;

    config_defaults(&cfg);
    assert_int_equal(config_set(&cfg, "admin.listen", value, &err), -1);
    if (strstr(err.reason, reason) == NULL)
        fail_msg("admin.listen=%s: reason '%s', want '%s'", value, err.reason,
                 reason);
    assert_null(cfg.admin_listen); /* unchanged on error */
    config_free(&cfg);
}

static void test_listen_errors(void **state)
{
    (void)state;
    expect_error("9187", "expected HOST:PORT");
    expect_error(":9187", "missing host");
    expect_error("0.0.0.0:", "missing port");
    expect_error("0.0.0.0:0", "port: must be between 1 and 65535");
    expect_error("0.0.0.0:65536", "port: must be between 1 and 65535");
    expect_error("0.0.0.0:91x", "port: not an integer");
    expect_error("::1:9187", "IPv6 address must be in brackets");
    expect_error("[::1]9187", "expected HOST:PORT");
    expect_error("[::1:9187", "unterminated [");
    expect_error("[]:9187", "missing host");
    expect_error("host :9187", "whitespace");
}

static void test_listen_values(void **state)
{
    struct config cfg;
    struct config_error err;

    (void)state;
    config_defaults(&cfg);
    assert_null(cfg.admin_listen); /* off by default */
    assert_int_equal(config_set(&cfg, "admin.listen", "0.0.0.0:9187", &err), 0);
    assert_string_equal(cfg.admin_listen, "0.0.0.0:9187");
    assert_string_equal(cfg.admin_host, "0.0.0.0");
    assert_int_equal(cfg.admin_port, 9187);
    assert_int_equal(config_set(&cfg, "admin.listen", "[::1]:80", &err), 0);
    assert_string_equal(cfg.admin_host, "::1");
    assert_int_equal(cfg.admin_port, 80);
    assert_int_equal(config_set(&cfg, "admin.listen", "localhost:1", &err), 0);
    assert_string_equal(cfg.admin_host, "localhost");
    /* Empty: off again. */
    assert_int_equal(config_set(&cfg, "admin.listen", "", &err), 0);
    assert_null(cfg.admin_listen);
    assert_null(cfg.admin_host);
    config_free(&cfg);
    /* The flag and the variable name it. */
    assert_string_equal(config_flag_key("http-listen"), "admin.listen");
    setenv("MJQ_HTTP_LISTEN", "127.0.0.1:x", 1);
    assert_int_equal(config_load(&cfg, NULL, NULL, 0, &err), -1);
    assert_string_equal(err.key, "MJQ_HTTP_LISTEN");
    assert_string_equal(err.value, "127.0.0.1:x");
    unsetenv("MJQ_HTTP_LISTEN");
    config_free(&cfg);
}

/* ---- the endpoint ------------------------------------------------------- */

struct probe_state {
    int healthy, ready;
};

static int health(void *ctx, char *reason, size_t len)
{
    struct probe_state *p = ctx;

    if (p->healthy)
        return 0;
    snprintf(reason, len, "no worker process running");
    return -1;
}

static int ready(void *ctx, char *reason, size_t len)
{
    struct probe_state *p = ctx;

    if (p->ready)
        return 0;
    snprintf(reason, len, "redis unreachable");
    return -1;
}

static char *metrics(void *ctx, size_t *len)
{
    (void)ctx;
    *len = 9;
    return strdup("mjq_up 1\n");
}

struct answer {
    struct event_base *base;
    int code;
    char type[128];
    char allow[32];
    char body[512];
};

static void on_answer(struct evhttp_request *req, void *arg)
{
    struct answer *a = arg;

    if (req != NULL) {
        struct evkeyvalq *h = evhttp_request_get_input_headers(req);
        struct evbuffer *b = evhttp_request_get_input_buffer(req);
        const char *type = evhttp_find_header(h, "Content-Type");
        const char *allow = evhttp_find_header(h, "Allow");
        size_t n = evbuffer_get_length(b);

        a->code = evhttp_request_get_response_code(req);
        snprintf(a->type, sizeof(a->type), "%s", type ? type : "");
        snprintf(a->allow, sizeof(a->allow), "%s", allow ? allow : "");
        if (n >= sizeof(a->body))
            n = sizeof(a->body) - 1;
        evbuffer_remove(b, a->body, n);
        a->body[n] = '\0';
    }
    event_base_loopexit(a->base, NULL);
}

static struct answer ask(struct event_base *base, int port,
                         enum evhttp_cmd_type cmd, const char *path)
{
    struct answer a;
    struct evhttp_connection *c =
        evhttp_connection_base_new(base, NULL, "127.0.0.1", (uint16_t)port);
    struct evhttp_request *req;

    memset(&a, 0, sizeof(a));
    a.base = base;
    a.code = -1;
    req = evhttp_request_new(on_answer, &a);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Host",
                      "127.0.0.1");
    assert_int_equal(evhttp_make_request(c, req, cmd, path), 0);
    event_base_dispatch(base);
    evhttp_connection_free(c);
    return a;
}

static void test_endpoint(void **state)
{
    struct event_base *base = event_base_new();
    struct probe_state ps = {1, 1};
    struct admin_handlers h = {health, ready, metrics, &ps};
    char err[256] = "";
    struct admin *a = admin_start(base, "127.0.0.1", 0, &h, err, sizeof(err));
    struct answer r;
    int port;

    (void)state;
    assert_non_null(a);
    port = admin_port(a);
    assert_true(port > 0);

    r = ask(base, port, EVHTTP_REQ_GET, "/healthz");
    assert_int_equal(r.code, 200);
    assert_string_equal(r.body, "ok\n");
    r = ask(base, port, EVHTTP_REQ_GET, "/readyz?verbose=1");
    assert_int_equal(r.code, 200);
    ps.healthy = ps.ready = 0;
    r = ask(base, port, EVHTTP_REQ_GET, "/healthz");
    assert_int_equal(r.code, 503);
    assert_string_equal(r.body, "no worker process running\n");
    r = ask(base, port, EVHTTP_REQ_GET, "/readyz");
    assert_int_equal(r.code, 503);
    assert_string_equal(r.body, "redis unreachable\n");
    r = ask(base, port, EVHTTP_REQ_GET, "/metrics");
    assert_int_equal(r.code, 200);
    assert_string_equal(r.type, "text/plain; version=0.0.4");
    assert_string_equal(r.body, "mjq_up 1\n");
    r = ask(base, port, EVHTTP_REQ_POST, "/metrics");
    assert_int_equal(r.code, 405);
    assert_string_equal(r.allow, "GET");
    r = ask(base, port, EVHTTP_REQ_DELETE, "/healthz");
    assert_int_equal(r.code, 405);
    r = ask(base, port, EVHTTP_REQ_GET, "/");
    assert_int_equal(r.code, 404);
    r = ask(base, port, EVHTTP_REQ_POST, "/nope");
    assert_int_equal(r.code, 404);

    /* A second server on the same port: a precise bind error. */
    assert_null(admin_start(base, "127.0.0.1", port, &h, err, sizeof(err)));
    assert_string_equal(err, "bind: Address already in use");
    assert_null(
        admin_start(base, "no-such-host.invalid", 1, &h, err, sizeof(err)));
    assert_non_null(strstr(err, "cannot resolve no-such-host.invalid"));

    admin_free(a);
    admin_free(NULL);
    event_base_free(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_listen_errors),
        cmocka_unit_test(test_listen_values),
        cmocka_unit_test(test_endpoint),
    };

    unsetenv("MJQ_HTTP_LISTEN");
    return cmocka_run_group_tests(tests, NULL, NULL);
}
