/* Unit tests for src/sim/sim_admin.c: /sim/stats, /sim/reset and
 * /sim/accounts without HTTP. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "sim/sim_admin.h"
#include "sim/sim_json.h"

#define T0 INT64_C(1700000000000)

static struct sim_account_opt two[] = {
    {(char *)"alice", (char *)"key-a"},
    {(char *)"bob", (char *)"key-b"},
};

struct fx {
    struct sim_opts opts;
    struct sim_admin ad;
    struct sim_buf body;
    struct sim_resp r;
    json_t *json;
};

static struct fx *fx_new(void)
{
    struct fx *f = calloc(1, sizeof(*f));

    f->opts.accounts = two;
    f->opts.naccounts = 2;
    f->opts.account_limit = 2;
    f->ad.tasks = sim_table_new(100);
    f->ad.stats = sim_stats_new();
    f->ad.accounts = sim_accounts_new(&f->opts);
    sim_table_set_drop_hook(f->ad.tasks, sim_accounts_on_drop, f->ad.accounts);
    sim_buf_init(&f->body);
    return f;
}

static void fx_free(struct fx *f)
{
    json_decref(f->json);
    sim_buf_release(&f->body);
    sim_table_free(f->ad.tasks);
    sim_accounts_free(f->ad.accounts);
    sim_stats_free(f->ad.stats);
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

    f->json = json_loadb(f->body.data, f->body.len, 0, &err);
    assert_non_null(f->json);
}

static void post_account(struct fx *f, const char *name, const char *body)
{
    begin(f);
    sim_admin_account(&f->ad, name, strlen(name), body, strlen(body), T0,
                      &f->r);
    parse(f);
}

static bool flag(struct fx *f, const char *key)
{
    return json_is_true(json_object_get(f->json, key));
}

static void test_account_flags(void **state)
{
    struct fx *f = fx_new();
    struct sim_account *alice = sim_accounts_at(f->ad.accounts, 0);
    (void)state;

    post_account(f, "nobody", "{\"down\":true}");
    assert_int_equal(f->r.status, 404);
    post_account(f, "alice", "{\"revoked\":true,\"quota\":false}");
    assert_int_equal(f->r.status, 200);
    assert_string_equal(json_string_value(json_object_get(f->json, "name")),
                        "alice");
    assert_true(flag(f, "revoked"));
    assert_false(flag(f, "quota"));
    assert_false(flag(f, "down"));
    assert_true(sim_account_flags(alice)->revoked);
    assert_true(sim_account_flags(alice)->no_quota);
    /* Sticky: a later call changes only what it names. */
    post_account(f, "alice", "{\"down\":true}");
    assert_true(flag(f, "revoked"));
    assert_true(flag(f, "down"));
    /* A bad body changes nothing, even the valid fields in it. */
    post_account(f, "alice", "{\"revoked\":false,\"dwon\":false}");
    assert_int_equal(f->r.status, 400);
    assert_true(sim_account_flags(alice)->revoked);
    post_account(f, "alice", "{\"down\":1}");
    assert_int_equal(f->r.status, 400);
    post_account(f, "alice", "[true]");
    assert_int_equal(f->r.status, 400);
    assert_true(sim_account_flags(alice)->down);
    /* An empty body just shows the account. */
    post_account(f, "alice", "");
    assert_int_equal(f->r.status, 200);
    assert_true(flag(f, "down"));
    /* Bob is untouched. */
    post_account(f, "bob", "{}");
    assert_false(flag(f, "revoked") || flag(f, "down"));
    assert_true(flag(f, "quota"));
    fx_free(f);
}

static void test_stats_reset_accounts(void **state)
{
    struct fx *f = fx_new();
    struct sim_account *bob = sim_accounts_at(f->ad.accounts, 1);
    struct sim_task *t = sim_task_new(7, SIM_ACTION_IMAGINE, "x", NULL);
    json_t *a;
    (void)state;

    t->account = 1;
    t->submit_ms = T0;
    sim_table_add(f->ad.tasks, t);
    sim_account_start(bob, t, SIM_MODE_RELAX, INT64_MAX, T0);
    sim_account_add(bob, SIM_ACTR_LIMIT_REFUSALS, 4);
    sim_stats_add(f->ad.stats, SIM_CTR_FETCHES, 3);
    sim_account_flags(bob)->down = true;

    begin(f);
    sim_admin_stats(&f->ad, T0, &f->r);
    parse(f);
    assert_int_equal(f->r.status, 200);
    assert_int_equal(json_integer_value(json_object_get(f->json, "fetches")),
                     3);
    assert_int_equal(json_integer_value(json_object_get(f->json, "tasks")), 1);
    a = json_object_get(json_object_get(f->json, "accounts"), "bob");
    assert_int_equal(json_integer_value(json_object_get(a, "limit_refusals")),
                     4);
    assert_int_equal(json_integer_value(json_object_get(a, "in_flight")), 1);
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(a, "in_flight_by_mode"), "relax")),
                     1);
    assert_non_null(json_object_get(
        json_object_get(json_object_get(f->json, "accounts"), "alice"),
        "in_flight_max"));

    /* Reset keeps tasks and flags, restarts the maxima from now. */
    begin(f);
    sim_admin_reset(&f->ad, NULL, "", 0, T0 + 1, &f->r);
    parse(f);
    assert_int_equal(
        json_integer_value(json_object_get(f->json, "tasks_dropped")), 0);
    begin(f);
    sim_admin_accounts(&f->ad, T0 + 1, &f->r);
    parse(f);
    assert_int_equal(
        json_integer_value(json_object_get(f->json, "account_limit")), 2);
    a = json_object_get(json_object_get(f->json, "accounts"), "bob");
    assert_true(json_is_true(json_object_get(a, "down")));
    assert_int_equal(json_integer_value(json_object_get(a, "limit_refusals")),
                     0);
    assert_int_equal(json_integer_value(json_object_get(a, "in_flight_max")),
                     1);

    /* ?tasks=1 drops the tasks, and with them what is in flight. */
    begin(f);
    sim_admin_reset(&f->ad, "tasks=1", "", 0, T0 + 2, &f->r);
    parse(f);
    assert_int_equal(
        json_integer_value(json_object_get(f->json, "tasks_dropped")), 1);
    assert_int_equal(sim_account_in_flight(bob, T0 + 2), 0);
    begin(f);
    sim_admin_stats(&f->ad, T0 + 2, &f->r);
    parse(f);
    a = json_object_get(json_object_get(f->json, "accounts"), "bob");
    assert_int_equal(json_integer_value(json_object_get(a, "in_flight_max")),
                     0);
    fx_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_account_flags),
        cmocka_unit_test(test_stats_reset_accounts),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
