/* Unit tests for src/sim/sim_api.c and sim_reply.c: the MJ behaviour and
 * the three dialects' wire shapes, without HTTP. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "sim/sim_api.h"
#include "sim/sim_content.h"
#include "sim/sim_json.h"

#define T0 INT64_C(1700000000000)

struct fx {
    struct sim_opts opts;
    struct sim_table *tasks;
    struct sim_accounts *accounts;
    struct sim_account *acct; /* the caller of the next request */
    struct sim_stats *stats;
    struct sim_rng rng;
    struct sim_api api;
    struct sim_buf body;
    struct sim_resp r;
    json_t *json; /* last parsed reply, or NULL */
};

/* Options only: a test may change them before fx_start(). */
static struct fx *fx_alloc(enum sim_dialect d)
{
    struct fx *f = calloc(1, sizeof(*f));

    f->opts.dialect = d;
    f->opts.duration_ms = 1000;
    f->opts.progress_steps = 4;
    f->opts.max_tasks = 1000;
    return f;
}

/* Builds what the server would from f->opts; the caller is account 0. */
static void fx_start(struct fx *f)
{
    f->tasks = sim_table_new((size_t)f->opts.max_tasks);
    f->accounts = sim_accounts_new(&f->opts);
    sim_table_set_drop_hook(f->tasks, sim_accounts_on_drop, f->accounts);
    f->acct = sim_accounts_at(f->accounts, 0);
    f->stats = sim_stats_new();
    sim_rng_seed(&f->rng, 1);
    f->api.opts = &f->opts;
    f->api.tasks = f->tasks;
    f->api.stats = f->stats;
    f->api.rng = &f->rng;
    f->api.timing.duration_ms = 1000;
    f->api.timing.queue_ms = 0;
    f->api.timing.steps = 4;
    sim_buf_init(&f->body);
}

static struct fx *fx_new(enum sim_dialect d)
{
    struct fx *f = fx_alloc(d);

    fx_start(f);
    return f;
}

static void fx_free(struct fx *f)
{
    json_decref(f->json);
    sim_buf_release(&f->body);
    sim_stats_free(f->stats);
    sim_table_free(f->tasks);
    sim_accounts_free(f->accounts);
    free(f);
}

static void begin(struct fx *f)
{
    json_decref(f->json);
    f->json = NULL;
    sim_buf_reset(&f->body);
    f->r.status = 0;
    f->r.ctype = NULL;
    f->r.body = &f->body;
}

static void parse(struct fx *f)
{
    json_error_t err;

    if (f->body.len > 0) {
        f->json = json_loadb(f->body.data, f->body.len, 0, &err);
        assert_non_null(f->json);
    }
}

static void submit(struct fx *f, enum sim_endpoint ep, const char *body,
                   enum sim_fault fault, int64_t now)
{
    begin(f);
    sim_api_submit(&f->api, f->acct, ep, SIM_MODE_DEFAULT, body, strlen(body),
                   fault, now, &f->r);
    parse(f);
}

static void fetch(struct fx *f, const char *id, int64_t now)
{
    begin(f);
    sim_api_fetch(&f->api, f->acct, id, strlen(id), now, &f->r);
    parse(f);
}

static const char *str(const struct fx *f, const char *key)
{
    return json_string_value(json_object_get(f->json, key));
}

static json_int_t num(const struct fx *f, const char *key)
{
    return json_integer_value(json_object_get(f->json, key));
}

/* Submits an imagine and returns its id (static buffer). */
static const char *imagine(struct fx *f, const char *prompt, int64_t now)
{
    static char id[24];
    char body[256];

    snprintf(body, sizeof(body), "{\"prompt\":\"%s\",\"state\":\"s\"}", prompt);
    submit(f, SIM_EP_IMAGINE, body, SIM_FAULT_NONE, now);
    assert_int_equal(f->r.status, 200);
    assert_int_equal(num(f, "code"), 1);
    snprintf(id, sizeof(id), "%s", str(f, "result"));
    return id;
}

/* customId of the button with this label in the last fetched task. */
static const char *button(const struct fx *f, const char *label)
{
    size_t i;
    json_t *b;

    json_array_foreach(json_object_get(f->json, "buttons"), i, b)
    {
        if (strcmp(json_string_value(json_object_get(b, "label")), label) == 0)
            return json_string_value(json_object_get(b, "customId"));
    }
    fail_msg("no button %s", label);
    return NULL;
}

static void test_trueai_imagine_lifecycle(void **state)
{
    struct fx *f = fx_new(SIM_DIALECT_TRUEAI);
    char id[24];
    (void)state;

    snprintf(id, sizeof(id), "%s", imagine(f, "a cat", T0));
    assert_int_equal(strlen(id), 16);
    assert_string_equal(str(f, "description"), "Submit success");
    fetch(f, id, T0 + 300);
    assert_int_equal(f->r.status, 200);
    assert_string_equal(f->r.ctype, "application/json");
    assert_string_equal(str(f, "id"), id);
    assert_string_equal(str(f, "status"), "IN_PROGRESS");
    assert_string_equal(str(f, "progress"), "25%");
    assert_string_equal(str(f, "state"), "s");
    assert_string_equal(str(f, "description"), "/imagine a cat");
    assert_true(json_is_null(json_object_get(f->json, "finishTime")));
    assert_true(json_is_null(json_object_get(f->json, "failReason")));
    assert_int_equal(num(f, "submitTime"), T0);
    assert_int_equal(json_array_size(json_object_get(f->json, "buttons")), 0);
    fetch(f, id, T0 + 1000);
    assert_string_equal(str(f, "status"), "SUCCESS");
    assert_int_equal(num(f, "finishTime"), T0 + 1000);
    assert_int_equal(json_array_size(json_object_get(f->json, "buttons")), 9);
    assert_non_null(strstr(str(f, "imageUrl"), "/grid_0.png?ex="));
    fx_free(f);
}

static void test_actions_and_modal(void **state)
{
    struct fx *f = fx_new(SIM_DIALECT_TRUEAI);
    char grid[24], up[24], modal[24], body[256];
    (void)state;

    snprintf(grid, sizeof(grid), "%s", imagine(f, "a cat", T0));
    fetch(f, grid, T0 + 500);
    /* Parent not finished yet. */
    snprintf(body, sizeof(body), "{\"taskId\":\"%s\",\"customId\":\"x\"}",
             grid);
    submit(f, SIM_EP_ACTION, body, SIM_FAULT_NONE, T0 + 500);
    assert_int_equal(num(f, "code"), 4);
    assert_string_equal(str(f, "description"), "关联任务状态错误");
    /* Unknown customId on a finished parent. */
    submit(f, SIM_EP_ACTION, body, SIM_FAULT_NONE, T0 + 1000);
    assert_string_equal(str(f, "description"), "未知的 Action 类型");
    /* Missing parent: 404 in trueai. */
    submit(f, SIM_EP_ACTION,
           "{\"taskId\":\"1999999999999999\",\"customId\":\"x\"}",
           SIM_FAULT_NONE, T0 + 1000);
    assert_int_equal(f->r.status, 404);
    assert_int_equal(num(f, "code"), 3);

    fetch(f, grid, T0 + 1000);
    snprintf(body, sizeof(body),
             "{\"taskId\":%s,\"customId\":\"%s\",\"state\":\"u\"}", grid,
             button(f, "U3")); /* numeric taskId, as relays send */
    submit(f, SIM_EP_ACTION, body, SIM_FAULT_NONE, T0 + 1000);
    assert_int_equal(num(f, "code"), 1);
    snprintf(up, sizeof(up), "%s", str(f, "result"));
    fetch(f, up, T0 + 2000);
    assert_string_equal(str(f, "action"), "UPSCALE");
    assert_string_equal(str(f, "prompt"), "a cat");
    assert_non_null(strstr(str(f, "imageUrl"), "/upscale_3.png?"));
    assert_int_equal(json_array_size(json_object_get(f->json, "buttons")), 6);

    snprintf(body, sizeof(body), "{\"taskId\":\"%s\",\"customId\":\"%s\"}", up,
             button(f, "Custom Zoom"));
    submit(f, SIM_EP_ACTION, body, SIM_FAULT_NONE, T0 + 2000);
    assert_int_equal(num(f, "code"), 21);
    assert_string_equal(str(f, "description"), "Waiting for window confirm");
    assert_true(json_is_true(
        json_object_get(json_object_get(f->json, "properties"), "remix")));
    snprintf(modal, sizeof(modal), "%s", str(f, "result"));
    fetch(f, modal, T0 + 60000);
    assert_string_equal(str(f, "status"), "MODAL");
    assert_string_equal(str(f, "action"), "ZOOM");

    snprintf(body, sizeof(body), "{\"taskId\":\"%s\",\"prompt\":\"z\"}", modal);
    submit(f, SIM_EP_MODAL, body, SIM_FAULT_NONE, T0 + 60000);
    assert_int_equal(num(f, "code"), 1);
    assert_string_equal(str(f, "result"), modal);
    fetch(f, modal, T0 + 60500);
    assert_string_equal(str(f, "status"), "IN_PROGRESS");
    fetch(f, modal, T0 + 61000);
    assert_string_equal(str(f, "status"), "SUCCESS");
    assert_string_equal(str(f, "prompt"), "z");
    /* Not MODAL any more. */
    submit(f, SIM_EP_MODAL, body, SIM_FAULT_NONE, T0 + 61000);
    assert_int_equal(num(f, "code"), 4);
    fx_free(f);
}

static void test_newapi_shapes(void **state)
{
    struct fx *f = fx_new(SIM_DIALECT_NEWAPI);
    char id[24], up[24], body[256];
    (void)state;

    submit(f, SIM_EP_IMAGINE, "{\"prompt\":\" \"}", SIM_FAULT_NONE, T0);
    assert_int_equal(f->r.status, 400);
    assert_string_equal(str(f, "description"), "prompt_is_required ");
    assert_string_equal(str(f, "type"), "upstream_error");
    assert_int_equal(num(f, "code"), 4);
    submit(f, SIM_EP_IMAGINE, "[1]", SIM_FAULT_NONE, T0);
    assert_string_equal(str(f, "description"), "bind_request_body_failed ");

    begin(f);
    submit(f, SIM_EP_IMAGINE, "{\"prompt\":\"x\"}", SIM_FAULT_QUEUE_FULL, T0);
    assert_int_equal(f->r.status, 200);
    assert_int_equal(num(f, "code"), 23);
    snprintf(id, sizeof(id), "%s", str(f, "result"));
    fetch(f, id, T0); /* the dead id of a queue-full reply */
    assert_int_equal(f->r.status, 400);
    assert_string_equal(str(f, "description"), "task_no_found ");

    f->opts.rate_in_queue = 1.0;
    submit(f, SIM_EP_IMAGINE, "{\"prompt\":\"banned\"}", SIM_FAULT_NONE, T0);
    assert_int_equal(num(f, "code"), 1); /* new-api rewrites 22 -> 1 */
    assert_non_null(strstr(str(f, "description"), "排队中"));
    f->opts.rate_in_queue = 0.0;
    snprintf(id, sizeof(id), "%s", str(f, "result"));
    fetch(f, id, T0);
    assert_string_equal(str(f, "state"), "");
    assert_int_equal(num(f, "startTime"), 0); /* 0, not null */
    assert_int_equal(num(f, "finishTime"), T0);
    assert_string_equal(str(f, "status"), "FAILURE");
    assert_string_equal(str(f, "progress"), "100%");
    assert_string_equal(str(f, "failReason"), "可能包含敏感词");

    snprintf(id, sizeof(id), "%s", imagine(f, "dog", T0));
    fetch(f, id, T0 + 1000);
    snprintf(body, sizeof(body), "{\"taskId\":\"%s\",\"customId\":\"%s\"}", id,
             button(f, "U1"));
    submit(f, SIM_EP_ACTION, body, SIM_FAULT_NONE, T0 + 1000);
    snprintf(up, sizeof(up), "%s", str(f, "result"));
    fetch(f, up, T0 + 2000);
    snprintf(body, sizeof(body), "{\"taskId\":\"%s\",\"customId\":\"%s\"}", up,
             button(f, "Vary (Region)"));
    submit(f, SIM_EP_ACTION, body, SIM_FAULT_NONE, T0 + 2000);
    assert_int_equal(num(f, "code"), 21); /* kept for Inpaint */

    submit(f, SIM_EP_DESCRIBE, "{\"link\":\"https://x/y.png\"}", SIM_FAULT_NONE,
           T0);
    snprintf(id, sizeof(id), "%s", str(f, "result"));
    fetch(f, id, T0 + 1000);
    snprintf(body, sizeof(body), "{\"taskId\":\"%s\",\"customId\":\"%s\"}", id,
             button(f, "2"));
    submit(f, SIM_EP_ACTION, body, SIM_FAULT_NONE, T0 + 1000);
    assert_int_equal(num(f, "code"), 1); /* PicReader: 21 rewritten */
    snprintf(id, sizeof(id), "%s", str(f, "result"));
    fetch(f, id, T0 + 1000);
    assert_string_equal(str(f, "status"), "MODAL");
    fx_free(f);
}

static void test_novicezk_shapes(void **state)
{
    struct fx *f = fx_new(SIM_DIALECT_NOVICEZK);
    char id[24];
    json_t *props;
    (void)state;

    submit(f, SIM_EP_IMAGINE, "{\"prompt\":\"a Banned cat\"}", SIM_FAULT_NONE,
           T0);
    assert_int_equal(num(f, "code"), 24);
    props = json_object_get(f->json, "properties");
    assert_string_equal(json_string_value(json_object_get(props, "bannedWord")),
                        "banned");
    assert_string_equal(json_string_value(json_object_get(props, "promptEn")),
                        "a Banned cat");
    submit(f, SIM_EP_BLEND, "{\"base64Array\":[\"data:a\",\"http://b\"]}",
           SIM_FAULT_NONE, T0);
    assert_int_equal(num(f, "code"), 4);
    assert_string_equal(str(f, "description"), "base64格式错误");
    submit(f, SIM_EP_BLEND, "{\"base64Array\":[\"data:a\"]}", SIM_FAULT_NONE,
           T0);
    assert_string_equal(str(f, "description"), "base64List参数错误");

    snprintf(id, sizeof(id), "%s", imagine(f, "epic fail", T0));
    fetch(f, id, T0 + 1000);
    assert_string_equal(str(f, "status"), "FAILURE");
    assert_string_equal(str(f, "failReason"),
                        "[Invalid parameter] Invalid value");
    assert_string_equal(str(f, "progress"), "");
    fetch(f, "1999999999999999", T0);
    assert_int_equal(f->r.status, 200);
    assert_int_equal(f->body.len, 0);

    submit(f, SIM_EP_IMAGINE, "{\"prompt\":\"x\"}", SIM_FAULT_QUEUE_FULL, T0);
    assert_int_equal(num(f, "code"), 23);
    assert_string_equal(str(f, "description"), "队列已满，请稍后尝试");
    assert_non_null(str(f, "result"));
    fx_free(f);
}

static void test_list_and_counters(void **state)
{
    struct fx *f = fx_new(SIM_DIALECT_TRUEAI);
    char a[24], b[24], c[24], body[256], *stats;
    json_t *st;
    json_error_t err;
    (void)state;

    f->opts.numeric_ids = true;
    submit(f, SIM_EP_IMAGINE, "{\"prompt\":\"a\",\"state\":\"j1\"}",
           SIM_FAULT_NONE, T0);
    assert_true(json_is_integer(json_object_get(f->json, "result")));
    snprintf(a, sizeof(a), "%lld", (long long)num(f, "result"));
    f->opts.numeric_ids = false;
    snprintf(b, sizeof(b), "%s", imagine(f, "b", T0));
    snprintf(c, sizeof(c), "%s", imagine(f, "vanish", T0));
    submit(f, SIM_EP_IMAGINE, "{\"prompt\":\"a\",\"state\":\"j1\"}",
           SIM_FAULT_QUEUE_FULL, T0);
    assert_int_equal(num(f, "code"), 9); /* trueai queue full */

    snprintf(body, sizeof(body),
             "{\"ids\":[\"%s\",%s,\"%s\",\"%s\",\"1\",\"x\",\"%s\"]}", a, b, c,
             b, a);
    begin(f);
    sim_api_list(&f->api, f->acct, body, strlen(body), T0 + 10, &f->r);
    parse(f);
    assert_int_equal(json_array_size(f->json), 2); /* dedup, drop missing */
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(f->json, 0), "id")),
        a); /* reversed */
    begin(f);
    sim_api_list(&f->api, f->acct, "{}", 2, T0, &f->r);
    assert_string_equal(f->body.data, "[]");

    begin(f);
    sim_api_cancel(&f->api, f->acct, b, strlen(b), T0 + 10, &f->r);
    assert_int_equal(f->r.status, 200);
    fetch(f, b, T0 + 5000);
    assert_string_equal(str(f, "status"), "FAILURE");
    assert_string_equal(str(f, "failReason"), "取消任务");

    stats = sim_stats_json(f->stats, sim_table_count(f->tasks));
    st = json_loads(stats, 0, &err);
    free(stats);
    assert_non_null(st);
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(st, "accepted_by_state"), "j1")),
                     1);
    assert_int_equal(json_integer_value(json_object_get(st, "accepted")), 3);
    assert_int_equal(json_integer_value(json_object_get(st, "submits")), 4);
    assert_int_equal(json_integer_value(json_object_get(st, "rejected")), 1);
    assert_int_equal(json_integer_value(json_object_get(st, "batch_ids")), 7);
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(st, "faults"), "queue_full")),
                     1);
    assert_int_equal(json_integer_value(json_object_get(st, "tasks")), 3);
    json_decref(st);
    fx_free(f);
}

static struct sim_account_opt two_accounts[] = {
    {(char *)"alice", (char *)"key-a"},
    {(char *)"bob", (char *)"key-b"},
};

static struct fx *fx_two(enum sim_dialect d, int64_t limit)
{
    struct fx *f = fx_alloc(d);

    f->opts.accounts = two_accounts;
    f->opts.naccounts = 2;
    f->opts.account_limit = limit;
    fx_start(f);
    return f;
}

static void as_account(struct fx *f, size_t i)
{
    f->acct = sim_accounts_at(f->accounts, i);
}

static void list(struct fx *f, const char *body, int64_t now)
{
    begin(f);
    sim_api_list(&f->api, f->acct, body, strlen(body), now, &f->r);
    parse(f);
}

/* Bob sees none of Alice's tasks: each dialect's own not-found shape. */
static void test_accounts_isolate_tasks(void **state)
{
    static const enum sim_dialect dialects[] = {
        SIM_DIALECT_NOVICEZK, SIM_DIALECT_TRUEAI, SIM_DIALECT_NEWAPI};
    (void)state;

    for (size_t k = 0; k < 3; k++) {
        struct fx *f = fx_two(dialects[k], 0);
        char grid[24], up[24], modal[24], body[256];
        char zoom[SIM_CUSTOM_ID_MAX];

        snprintf(grid, sizeof(grid), "%s", imagine(f, "a cat", T0));
        fetch(f, grid, T0 + 1000);
        assert_string_equal(str(f, "status"), "SUCCESS");
        snprintf(body, sizeof(body), "{\"taskId\":\"%s\",\"customId\":\"%s\"}",
                 grid, button(f, "U1"));
        submit(f, SIM_EP_ACTION, body, SIM_FAULT_NONE, T0 + 1000);
        assert_int_equal(num(f, "code"), 1);
        snprintf(up, sizeof(up), "%s", str(f, "result"));
        fetch(f, up, T0 + 2000);
        snprintf(zoom, sizeof(zoom), "%s", button(f, "Custom Zoom"));
        snprintf(body, sizeof(body), "{\"taskId\":\"%s\",\"customId\":\"%s\"}",
                 up, zoom);
        submit(f, SIM_EP_ACTION, body, SIM_FAULT_NONE, T0 + 2000);
        snprintf(modal, sizeof(modal), "%s", str(f, "result"));

        as_account(f, 1);
        fetch(f, grid, T0 + 2000);
        if (dialects[k] == SIM_DIALECT_NEWAPI) {
            assert_int_equal(f->r.status, 400);
            assert_string_equal(str(f, "description"), "task_no_found ");
        } else {
            assert_int_equal(f->r.status,
                             dialects[k] == SIM_DIALECT_TRUEAI ? 204 : 200);
            assert_int_equal(f->body.len, 0);
        }
        snprintf(body, sizeof(body), "{\"ids\":[\"%s\",\"%s\"]}", grid, modal);
        list(f, body, T0 + 2000);
        assert_int_equal(json_array_size(f->json), 0);
        snprintf(body, sizeof(body), "{\"taskId\":\"%s\",\"customId\":\"%s\"}",
                 grid, "MJ::JOB::upsample::1::x");
        submit(f, SIM_EP_ACTION, body, SIM_FAULT_NONE, T0 + 2000);
        if (dialects[k] == SIM_DIALECT_NEWAPI) {
            assert_int_equal(f->r.status, 400);
            assert_string_equal(str(f, "description"), "task_not_found ");
        } else {
            assert_int_equal(num(f, "code"), 3);
            assert_string_equal(str(f, "description"),
                                "关联任务不存在或已失效");
        }
        snprintf(body, sizeof(body), "{\"taskId\":\"%s\"}", modal);
        submit(f, SIM_EP_MODAL, body, SIM_FAULT_NONE, T0 + 2000);
        if (dialects[k] != SIM_DIALECT_NEWAPI)
            assert_string_equal(str(f, "description"), "目标任务不存在");
        begin(f);
        sim_api_cancel(&f->api, f->acct, modal, strlen(modal), T0 + 2000,
                       &f->r);
        if (dialects[k] != SIM_DIALECT_NOVICEZK) /* its 200 looks alike */
            assert_int_equal(f->r.status,
                             dialects[k] == SIM_DIALECT_TRUEAI ? 204 : 400);

        /* Alice still sees all of it, and the modal is still hers. */
        as_account(f, 0);
        snprintf(body, sizeof(body), "{\"ids\":[\"%s\",\"%s\"]}", grid, modal);
        list(f, body, T0 + 2000);
        assert_int_equal(json_array_size(f->json), 2);
        fetch(f, modal, T0 + 2000);
        assert_string_equal(str(f, "status"), "MODAL");
        fx_free(f);
    }
}

/* Account's in_flight / in_flight_max / limit_refusals from the JSON. */
static json_int_t acct_num(struct fx *f, const char *key, int64_t now)
{
    json_t *j = sim_account_json(f->acct, now);
    json_int_t v = json_integer_value(json_object_get(j, key));

    json_decref(j);
    return v;
}

/* A limit of 2: the third submit is refused in each dialect's shape. */
static void test_account_limit_shapes(void **state)
{
    static const enum sim_dialect dialects[] = {
        SIM_DIALECT_NOVICEZK, SIM_DIALECT_TRUEAI, SIM_DIALECT_NEWAPI};
    (void)state;

    for (size_t k = 0; k < 3; k++) {
        struct fx *f = fx_two(dialects[k], 2);
        char *stats;
        json_t *st;
        json_error_t jerr;

        imagine(f, "a", T0);
        imagine(f, "b", T0 + 100);
        submit(f, SIM_EP_IMAGINE, "{\"prompt\":\"c\",\"state\":\"j3\"}",
               SIM_FAULT_NONE, T0 + 200);
        switch (dialects[k]) {
        case SIM_DIALECT_NOVICEZK:
            assert_int_equal(f->r.status, 200);
            assert_int_equal(num(f, "code"), 23);
            assert_string_equal(str(f, "description"), "队列已满，请稍后尝试");
            break;
        case SIM_DIALECT_TRUEAI:
            assert_int_equal(f->r.status, 200);
            assert_int_equal(num(f, "code"), 9);
            assert_string_equal(str(f, "description"),
                                "提交失败，队列已满，请稍后重试");
            assert_true(json_is_null(json_object_get(f->json, "result")));
            break;
        case SIM_DIALECT_NEWAPI:
            assert_int_equal(f->r.status, 429);
            assert_int_equal(num(f, "code"), 30);
            assert_string_equal(str(f, "description"),
                                "当前分组负载已饱和，请稍后再试");
            break;
        }
        assert_int_equal(acct_num(f, "limit_refusals", T0 + 200), 1);
        assert_int_equal(acct_num(f, "in_flight", T0 + 200), 2);
        /* Bob is not limited by Alice's tasks. */
        as_account(f, 1);
        imagine(f, "d", T0 + 200);
        assert_int_equal(acct_num(f, "in_flight", T0 + 200), 1);
        /* Alice's first task ends at T0 + 1000: room for one more. */
        as_account(f, 0);
        imagine(f, "e", T0 + 1000);
        submit(f, SIM_EP_IMAGINE, "{\"prompt\":\"f\"}", SIM_FAULT_NONE,
               T0 + 1000);
        assert_int_not_equal(num(f, "code"), 1);
        assert_int_equal(acct_num(f, "in_flight_max", T0 + 1000), 2);
        assert_int_equal(acct_num(f, "accepted", T0 + 1000), 3);
        assert_int_equal(acct_num(f, "submits", T0 + 1000), 5);

        stats = sim_stats_json(f->stats, sim_table_count(f->tasks));
        st = json_loads(stats, 0, &jerr);
        free(stats);
        assert_int_equal(
            json_integer_value(json_object_get(st, "limit_refusals")), 2);
        /* No accepted submit for the refused state. */
        assert_null(
            json_object_get(json_object_get(st, "accepted_by_state"), "j3"));
        json_decref(st);
        fx_free(f);
    }
}

/* Modes, MODAL tasks (not running), modal submits, cancels, forever. */
static void test_limits_modes_modal_cancel(void **state)
{
    static const char fast3[] = "{\"prompt\":\"forever 3\"}";
    static const char fast4[] = "{\"prompt\":\"x\"}";
    struct fx *f = fx_alloc(SIM_DIALECT_TRUEAI);
    char grid[24], up[24], modal[24], forever[24], body[256];
    (void)state;

    f->opts.account_limit = 3;
    f->opts.mode_limit[SIM_MODE_FAST] = 1;
    fx_start(f);
    snprintf(grid, sizeof(grid), "%s", imagine(f, "a cat", T0));
    fetch(f, grid, T0 + 1000);
    snprintf(body, sizeof(body), "{\"taskId\":\"%s\",\"customId\":\"%s\"}",
             grid, button(f, "U1"));
    submit(f, SIM_EP_ACTION, body, SIM_FAULT_NONE, T0 + 1000);
    snprintf(up, sizeof(up), "%s", str(f, "result"));
    fetch(f, up, T0 + 2000);
    snprintf(body, sizeof(body), "{\"taskId\":\"%s\",\"customId\":\"%s\"}", up,
             button(f, "Custom Zoom"));

    /* Fill the account with three tasks that never end, one fast. */
    snprintf(forever, sizeof(forever), "%s",
             imagine(f, "forever 1", T0 + 2000));
    imagine(f, "forever 2", T0 + 2000);
    begin(f);
    sim_api_submit(&f->api, f->acct, SIM_EP_IMAGINE, SIM_MODE_FAST, fast3,
                   strlen(fast3), SIM_FAULT_NONE, T0 + 2000, &f->r);
    parse(f);
    assert_int_equal(num(f, "code"), 1);
    assert_int_equal(acct_num(f, "in_flight", T0 + 2000), 3);
    /* An action that only opens a MODAL task starts nothing: accepted. */
    submit(f, SIM_EP_ACTION, body, SIM_FAULT_NONE, T0 + 2000);
    assert_int_equal(num(f, "code"), 21);
    snprintf(modal, sizeof(modal), "%s", str(f, "result"));
    /* Running the modal would exceed 3: refused, and it stays MODAL. */
    snprintf(body, sizeof(body), "{\"taskId\":\"%s\"}", modal);
    submit(f, SIM_EP_MODAL, body, SIM_FAULT_NONE, T0 + 2000);
    assert_int_equal(num(f, "code"), 9);
    fetch(f, modal, T0 + 2000);
    assert_string_equal(str(f, "status"), "MODAL");
    /* A cancel frees a slot at once, but fast is still full. */
    begin(f);
    sim_api_cancel(&f->api, f->acct, forever, strlen(forever), T0 + 2100,
                   &f->r);
    assert_int_equal(acct_num(f, "in_flight", T0 + 2100), 2);
    begin(f);
    sim_api_submit(&f->api, f->acct, SIM_EP_IMAGINE, SIM_MODE_FAST, fast4,
                   strlen(fast4), SIM_FAULT_NONE, T0 + 2100, &f->r);
    parse(f);
    assert_int_equal(num(f, "code"), 9);
    submit(f, SIM_EP_MODAL, body, SIM_FAULT_NONE, T0 + 2100);
    assert_int_equal(num(f, "code"), 1);
    assert_int_equal(acct_num(f, "in_flight", T0 + 2100), 3);
    assert_int_equal(acct_num(f, "limit_refusals", T0 + 2100), 2);
    /* The modal task ends a duration later. */
    assert_int_equal(acct_num(f, "in_flight", T0 + 3100), 2);
    fx_free(f);
}

static void test_quota_shapes(void **state)
{
    static const enum sim_dialect dialects[] = {
        SIM_DIALECT_NOVICEZK, SIM_DIALECT_TRUEAI, SIM_DIALECT_NEWAPI};
    (void)state;

    for (size_t k = 0; k < 3; k++) {
        struct fx *f = fx_two(dialects[k], 0);
        char id[24];

        snprintf(id, sizeof(id), "%s", imagine(f, "a cat", T0));
        sim_account_flags(f->acct)->no_quota = true;
        submit(f, SIM_EP_IMAGINE, "{\"prompt\":\"x\"}", SIM_FAULT_NONE, T0);
        if (dialects[k] == SIM_DIALECT_NEWAPI) {
            assert_int_equal(f->r.status, 400);
            assert_string_equal(str(f, "description"), "quota_not_enough ");
            assert_string_equal(str(f, "type"), "upstream_error");
        } else {
            assert_int_equal(f->r.status, 200);
            assert_string_equal(str(f, "description"), "quota_not_enough");
        }
        assert_int_equal(num(f, "code"), 4);
        /* Fetches still work; the other account still submits. */
        fetch(f, id, T0 + 1000);
        assert_string_equal(str(f, "status"), "SUCCESS");
        assert_int_equal(acct_num(f, "quota_refusals", T0), 1);
        as_account(f, 1);
        imagine(f, "b", T0);
        as_account(f, 0);
        sim_account_flags(f->acct)->no_quota = false;
        imagine(f, "c", T0);
        fx_free(f);
    }
}

/* min_read_gap_ms: fetches and list answers of one task, per account. */
static void test_read_gaps(void **state)
{
    struct fx *f = fx_two(SIM_DIALECT_TRUEAI, 0);
    char a[24], b[24], body[128];
    (void)state;

    snprintf(a, sizeof(a), "%s", imagine(f, "a", T0));
    snprintf(b, sizeof(b), "%s", imagine(f, "b", T0));
    fetch(f, a, T0 + 100);
    fetch(f, b, T0 + 150);
    assert_int_equal(sim_account_min_read_gap(f->acct), -1);
    /* Duplicates in one call are one read; a missing id is no read. */
    snprintf(body, sizeof(body), "{\"ids\":[\"%s\",\"%s\",\"%s\"]}", a, a,
             "1999999999999999");
    list(f, body, T0 + 900);
    assert_int_equal(json_array_size(f->json), 1);
    assert_int_equal(acct_num(f, "min_read_gap_ms", T0), 800);
    fetch(f, b, T0 + 400);
    assert_int_equal(acct_num(f, "min_read_gap_ms", T0), 250);
    assert_int_equal(acct_num(f, "batch_fetches", T0), 1);
    assert_int_equal(acct_num(f, "batch_ids", T0), 3);
    assert_int_equal(acct_num(f, "fetches", T0), 3);
    /* Bob's fetches of Alice's task are no reads: it is not found. */
    as_account(f, 1);
    fetch(f, a, T0 + 901);
    fetch(f, a, T0 + 902);
    assert_int_equal(sim_account_min_read_gap(f->acct), -1);
    as_account(f, 0);
    assert_int_equal(sim_account_min_read_gap(f->acct), 250);
    fx_free(f);
}

static void test_json_writer(void **state)
{
    struct sim_buf b;
    struct sim_json w;
    (void)state;

    sim_buf_init(&b);
    sim_json_begin(&w, &b);
    sim_json_obj_open(&w);
    sim_json_key(&w, "s");
    sim_json_str(&w, "a\"b\\c\n\x01\xe4\xb8\xad");
    sim_json_key(&w, "n");
    sim_json_int(&w, INT64_MIN);
    sim_json_key(&w, "a");
    sim_json_arr_open(&w);
    sim_json_null(&w);
    sim_json_bool(&w, false);
    sim_json_obj_open(&w);
    sim_json_obj_close(&w);
    sim_json_arr_close(&w);
    sim_json_obj_close(&w);
    assert_string_equal(b.data,
                        "{\"s\":\"a\\\"b\\\\c\\n\\u0001\xe4\xb8\xad\","
                        "\"n\":-9223372036854775808,\"a\":[null,false,{}]}");
    sim_buf_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trueai_imagine_lifecycle),
        cmocka_unit_test(test_actions_and_modal),
        cmocka_unit_test(test_newapi_shapes),
        cmocka_unit_test(test_novicezk_shapes),
        cmocka_unit_test(test_list_and_counters),
        cmocka_unit_test(test_accounts_isolate_tasks),
        cmocka_unit_test(test_account_limit_shapes),
        cmocka_unit_test(test_limits_modes_modal_cancel),
        cmocka_unit_test(test_quota_shapes),
        cmocka_unit_test(test_read_gaps),
        cmocka_unit_test(test_json_writer),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
