/* Unit tests for src/sim/sim_account.c: the registry, keys, the in-flight
 * heap against a brute-force count, limits, reset, read gaps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "sim/sim_account.h"
#include "sim/sim_fault.h"
#include "sim/sim_task.h"

#define T0 INT64_C(1700000000000)

static struct sim_account_opt two[] = {
    {(char *)"alice", (char *)"key-a"},
    {(char *)"bob", (char *)"key-b"},
};

static void opts_init(struct sim_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->duration_ms = 1000;
    o->progress_steps = 4;
}

static struct sim_task *new_task(uint64_t id, unsigned account)
{
    struct sim_task *t = sim_task_new(id, SIM_ACTION_IMAGINE, "p", NULL);

    t->account = (uint8_t)account;
    t->submit_ms = T0;
    return t;
}

static json_int_t jint(json_t *o, const char *key)
{
    return json_integer_value(json_object_get(o, key));
}

static void test_registry(void **state)
{
    struct sim_opts o;
    struct sim_accounts *as;
    struct sim_account *a;
    (void)state;

    opts_init(&o);
    as = sim_accounts_new(&o);
    assert_false(sim_accounts_auth(as));
    assert_int_equal(sim_accounts_count(as), 1);
    a = sim_accounts_at(as, 0);
    assert_string_equal(sim_account_name(a), "default");
    /* Auth off: any key, or none, is the default account. */
    assert_ptr_equal(sim_accounts_by_key(as, "x", 1), a);
    assert_ptr_equal(sim_accounts_by_key(as, "", 0), a);
    assert_null(sim_accounts_at(as, 1));
    sim_accounts_free(as);

    o.key = (char *)"main-key";
    o.accounts = two;
    o.naccounts = 2;
    as = sim_accounts_new(&o);
    assert_true(sim_accounts_auth(as));
    assert_int_equal(sim_accounts_count(as), 3);
    a = sim_accounts_by_key(as, "key-b", 5);
    assert_non_null(a);
    assert_string_equal(sim_account_name(a), "bob");
    assert_int_equal(sim_account_index(a), 2);
    assert_ptr_equal(sim_accounts_by_key(as, "main-key", 8),
                     sim_accounts_at(as, 0));
    assert_null(sim_accounts_by_key(as, "key-", 4));
    assert_null(sim_accounts_by_key(as, "key-bb", 6));
    assert_ptr_equal(sim_accounts_by_name(as, "alice", 5),
                     sim_accounts_at(as, 1));
    assert_null(sim_accounts_by_name(as, "ali", 3));
    sim_accounts_free(as);

    /* Only --account: no "default" account at all. */
    o.key = NULL;
    as = sim_accounts_new(&o);
    assert_int_equal(sim_accounts_count(as), 2);
    assert_null(sim_accounts_by_name(as, "default", 7));
    assert_null(sim_accounts_by_key(as, "", 0));
    sim_accounts_free(as);
    sim_accounts_free(NULL);
}

/*
 * Random starts, stops and clock steps; after each step the heap's count
 * must match a plain count over every task, and so must the maximum.
 */
static void test_heap_matches_brute_force(void **state)
{
    enum { N = 400 };
    struct sim_opts o;
    struct sim_accounts *as;
    struct sim_account *a;
    struct sim_task *tasks[N];
    int64_t until[N];
    bool stopped[N];
    struct sim_rng rng;
    int64_t now = T0;
    uint64_t want_max = 0;
    (void)state;

    opts_init(&o);
    as = sim_accounts_new(&o);
    a = sim_accounts_at(as, 0);
    sim_rng_seed(&rng, 42);
    for (int i = 0; i < N; i++) {
        uint64_t want = 0;

        tasks[i] = new_task((uint64_t)i + 1, 0);
        until[i] = now + sim_rng_range(&rng, 0, 5000);
        if (i % 37 == 0)
            until[i] = INT64_MAX;
        stopped[i] = false;
        sim_account_start(a, tasks[i], (enum sim_mode)(i % SIM_MODE_COUNT),
                          until[i], now);
        if (i > 10 && sim_rng_chance(&rng, 0.2)) {
            int k = sim_rng_range(&rng, 0, i);

            sim_account_stop(a, tasks[k]);
            stopped[k] = true;
        }
        for (int k = 0; k <= i; k++) {
            if (!stopped[k] && until[k] > now)
                want++;
        }
        if (want > want_max)
            want_max = want;
        assert_int_equal(sim_account_in_flight(a, now), want);
        now += sim_rng_range(&rng, 0, 40);
    }
    {
        json_t *j = sim_account_json(a, now);

        assert_int_equal(jint(j, "in_flight_max"), (json_int_t)want_max);
        json_decref(j);
    }
    /* Everything but the unstopped "forever" ones ends. */
    {
        uint64_t forever = 0;

        for (int i = 0; i < N; i++) {
            if (!stopped[i] && until[i] == INT64_MAX)
                forever++;
        }
        assert_true(forever > 0);
        assert_int_equal(sim_account_in_flight(a, INT64_MAX - 1), forever);
        for (int i = 0; i < N; i++)
            sim_account_stop(a, tasks[i]);
        assert_int_equal(sim_account_in_flight(a, now), 0);
        for (int i = 0; i < N; i++)
            assert_int_equal(tasks[i]->flight_pos, 0);
    }
    sim_accounts_free(as);
    for (int i = 0; i < N; i++)
        sim_task_free(tasks[i]);
}

static void test_limits(void **state)
{
    struct sim_opts o;
    struct sim_accounts *as;
    struct sim_account *a, *b;
    struct sim_task *t[6];
    json_t *j;
    (void)state;

    opts_init(&o);
    o.accounts = two;
    o.naccounts = 2;
    o.account_limit = 3;
    o.mode_limit[SIM_MODE_FAST] = 1;
    as = sim_accounts_new(&o);
    a = sim_accounts_at(as, 0);
    b = sim_accounts_at(as, 1);
    for (int i = 0; i < 6; i++)
        t[i] = new_task((uint64_t)i + 1, i < 4 ? 0 : 1);

    assert_true(sim_account_may_start(a, SIM_MODE_FAST, T0));
    sim_account_start(a, t[0], SIM_MODE_FAST, T0 + 1000, T0);
    assert_false(sim_account_may_start(a, SIM_MODE_FAST, T0)); /* fast: 1 */
    assert_true(sim_account_may_start(a, SIM_MODE_RELAX, T0));
    sim_account_start(a, t[1], SIM_MODE_RELAX, T0 + 2000, T0);
    sim_account_start(a, t[2], SIM_MODE_DEFAULT, INT64_MAX, T0);
    assert_false(sim_account_may_start(a, SIM_MODE_DEFAULT, T0)); /* 3 */
    /* The other account has its own budget. */
    assert_true(sim_account_may_start(b, SIM_MODE_FAST, T0));
    sim_account_start(b, t[4], SIM_MODE_FAST, T0 + 500, T0);
    /* At T0 + 1000 the fast task is over: both limits have room. */
    assert_true(sim_account_may_start(a, SIM_MODE_FAST, T0 + 1000));
    sim_account_start(a, t[3], SIM_MODE_FAST, T0 + 3000, T0 + 1000);
    assert_int_equal(sim_account_in_flight(a, T0 + 1000), 3);
    /* A task that is over at its start never counts. */
    sim_account_start(b, t[5], SIM_MODE_DEFAULT, T0 + 10, T0 + 10);
    assert_int_equal(t[5]->flight_pos, 0);
    assert_int_equal(sim_account_in_flight(b, T0 + 10), 1);

    j = sim_account_json(a, T0 + 1000);
    assert_int_equal(jint(j, "in_flight"), 3);
    assert_int_equal(jint(j, "in_flight_max"), 3);
    assert_int_equal(jint(json_object_get(j, "in_flight_max_by_mode"), "fast"),
                     1);
    assert_int_equal(jint(json_object_get(j, "in_flight_by_mode"), "relax"), 1);
    assert_true(json_is_true(json_object_get(j, "quota")));
    assert_true(json_is_null(json_object_get(j, "min_read_gap_ms")));
    json_decref(j);

    /* Reset: counters to 0, maxima restart from what runs now. */
    sim_account_add(a, SIM_ACTR_LIMIT_REFUSALS, 2);
    assert_int_equal(sim_account_get(a, SIM_ACTR_LIMIT_REFUSALS), 2);
    sim_accounts_reset(as, T0 + 2500); /* t[1] over: t[2], t[3] left */
    j = sim_account_json(a, T0 + 2500);
    assert_int_equal(jint(j, "limit_refusals"), 0);
    assert_int_equal(jint(j, "in_flight"), 2);
    assert_int_equal(jint(j, "in_flight_max"), 2);
    assert_int_equal(jint(json_object_get(j, "in_flight_max_by_mode"), "relax"),
                     0);
    json_decref(j);

    /* The registry document: one object per account, by name. */
    j = sim_accounts_json(as, T0 + 2500);
    assert_int_equal(json_object_size(j), 2);
    assert_int_equal(jint(json_object_get(j, "bob"), "in_flight"), 0);
    json_decref(j);
    j = sim_accounts_limits_json(as);
    assert_int_equal(jint(j, "account_limit"), 3);
    assert_int_equal(jint(json_object_get(j, "mode_limits"), "fast"), 1);
    assert_true(json_is_true(json_object_get(j, "auth")));
    json_decref(j);

    sim_accounts_free(as);
    for (int i = 0; i < 6; i++)
        sim_task_free(t[i]);
}

/* The table's drop hook takes evicted and cleared tasks out of the heap. */
static void test_drop_hook(void **state)
{
    struct sim_opts o;
    struct sim_accounts *as;
    struct sim_account *a;
    struct sim_table *tab = sim_table_new(3);
    (void)state;

    opts_init(&o);
    as = sim_accounts_new(&o);
    a = sim_accounts_at(as, 0);
    sim_table_set_drop_hook(tab, sim_accounts_on_drop, as);
    for (uint64_t i = 1; i <= 5; i++) {
        struct sim_task *t = new_task(i, 0);

        sim_table_add(tab, t);
        sim_account_start(a, t, SIM_MODE_DEFAULT, INT64_MAX, T0);
    }
    /* Two evicted: only the three the table holds are in flight. */
    assert_int_equal(sim_table_count(tab), 3);
    assert_int_equal(sim_account_in_flight(a, T0), 3);
    assert_int_equal(sim_table_clear(tab), 3);
    assert_int_equal(sim_account_in_flight(a, T0), 0);
    sim_table_free(tab);
    sim_accounts_free(as);
}

static void test_read_gaps(void **state)
{
    struct sim_opts o;
    struct sim_accounts *as;
    struct sim_account *a;
    struct sim_task *t1 = new_task(1, 0);
    struct sim_task *t2 = new_task(2, 0);
    (void)state;

    opts_init(&o);
    as = sim_accounts_new(&o);
    a = sim_accounts_at(as, 0);
    assert_int_equal(sim_account_min_read_gap(a), -1);
    sim_account_read(a, t1, T0);
    assert_int_equal(sim_account_min_read_gap(a), -1); /* one read only */
    sim_account_read(a, t2, T0 + 10); /* another task: no gap */
    assert_int_equal(sim_account_min_read_gap(a), -1);
    sim_account_read(a, t1, T0 + 500);
    assert_int_equal(sim_account_min_read_gap(a), 500);
    sim_account_read(a, t2, T0 + 310);
    assert_int_equal(sim_account_min_read_gap(a), 300);
    sim_account_read(a, t1, T0 + 1500);
    assert_int_equal(sim_account_min_read_gap(a), 300);
    /* After a reset, a read from before it starts no gap. */
    sim_accounts_reset(as, T0 + 1600);
    assert_int_equal(sim_account_min_read_gap(a), -1);
    sim_account_read(a, t1, T0 + 1601);
    assert_int_equal(sim_account_min_read_gap(a), -1);
    sim_account_read(a, t1, T0 + 1700);
    assert_int_equal(sim_account_min_read_gap(a), 99);
    sim_accounts_free(as);
    sim_task_free(t1);
    sim_task_free(t2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registry),
        cmocka_unit_test(test_heap_matches_brute_force),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_drop_hook),
        cmocka_unit_test(test_read_gaps),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
