/* Unit tests for src/sim/sim_task.c and sim_content.c: the lazy timeline,
 * ids, the task table, buttons and what they do. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sim/sim_content.h"
#include "sim/sim_task.h"

#define T0 INT64_C(1700000000000)

static const struct sim_timing timing = {
    .duration_ms = 1000, .queue_ms = 200, .steps = 4};

static struct sim_task *task(enum sim_action a, const char *prompt)
{
    struct sim_task *t =
        sim_task_new(UINT64_C(1700000000000000), a, prompt, "job-1");

    t->submit_ms = T0;
    t->outcome = (uint8_t)sim_outcome_of(prompt);
    return t;
}

static void snap_at(const struct sim_task *t, int64_t el, struct sim_snap *s)
{
    sim_task_snap(t, &timing, T0 + el, s);
}

static void test_timeline_normal(void **state)
{
    struct sim_task *t = task(SIM_ACTION_IMAGINE, "a cat");
    struct sim_snap s;
    (void)state;

    snap_at(t, 0, &s);
    assert_int_equal(s.status, SIM_STATUS_NOT_START);
    assert_int_equal(s.start_ms, 0);
    snap_at(t, 150, &s);
    assert_int_equal(s.status, SIM_STATUS_SUBMITTED);
    snap_at(t, 200, &s);
    assert_int_equal(s.status, SIM_STATUS_IN_PROGRESS);
    assert_int_equal(s.progress, 0);
    assert_int_equal(s.start_ms, T0 + 200);
    snap_at(t, 400, &s); /* 200 of 800 ms in: step 1 of 4 */
    assert_int_equal(s.progress, 25);
    snap_at(t, 999, &s);
    assert_int_equal(s.progress, 75);
    assert_int_equal(s.finish_ms, 0);
    snap_at(t, 1000, &s);
    assert_int_equal(s.status, SIM_STATUS_SUCCESS);
    assert_int_equal(s.progress, 100);
    assert_int_equal(s.finish_ms, T0 + 1000);
    snap_at(t, 100000, &s);
    assert_int_equal(s.finish_ms, T0 + 1000);
    sim_task_free(t);
}

static void test_timeline_zero_duration(void **state)
{
    struct sim_timing tm = {.duration_ms = 0, .queue_ms = 500, .steps = 4};
    struct sim_task *t = task(SIM_ACTION_IMAGINE, "a cat");
    struct sim_snap s;
    (void)state;

    sim_task_snap(t, &tm, T0, &s);
    assert_int_equal(s.status, SIM_STATUS_SUCCESS);
    assert_int_equal(s.finish_ms, T0);
    sim_task_free(t);
}

static void test_timeline_magic_words(void **state)
{
    struct sim_task *t;
    struct sim_snap s;
    (void)state;

    t = task(SIM_ACTION_IMAGINE, "this will FAIL");
    snap_at(t, 999, &s);
    assert_int_equal(s.status, SIM_STATUS_IN_PROGRESS);
    snap_at(t, 1000, &s);
    assert_int_equal(s.status, SIM_STATUS_FAILURE);
    assert_int_equal(s.fail, SIM_FAIL_INVALID);
    sim_task_free(t);

    t = task(SIM_ACTION_IMAGINE, "Banned words");
    snap_at(t, 50, &s);
    assert_int_equal(s.status, SIM_STATUS_NOT_START);
    snap_at(t, 200, &s);
    assert_int_equal(s.status, SIM_STATUS_FAILURE);
    assert_int_equal(s.fail, SIM_FAIL_BANNED);
    assert_int_equal(s.start_ms, 0);
    sim_task_free(t);

    t = task(SIM_ACTION_IMAGINE, "forever young");
    snap_at(t, 1000000, &s);
    assert_int_equal(s.status, SIM_STATUS_IN_PROGRESS);
    assert_int_equal(s.progress, 75);
    sim_task_free(t);

    assert_int_equal(sim_outcome_of("VaNiSh"), SIM_OUTCOME_VANISH);
    assert_int_equal(sim_outcome_of("modal"), SIM_OUTCOME_OK);
    assert_int_equal(sim_outcome_of(NULL), SIM_OUTCOME_OK);
}

static void test_timeline_modal_and_cancel(void **state)
{
    struct sim_task *t = task(SIM_ACTION_ZOOM, "a cat");
    struct sim_snap s;
    (void)state;

    t->modal = true;
    snap_at(t, 100000, &s);
    assert_int_equal(s.status, SIM_STATUS_MODAL);
    t->modal = false;
    t->cancel_ms = T0 + 500;
    snap_at(t, 400, &s);
    assert_int_equal(s.status, SIM_STATUS_IN_PROGRESS);
    snap_at(t, 5000, &s);
    assert_int_equal(s.status, SIM_STATUS_CANCEL);
    assert_int_equal(s.fail, SIM_FAIL_CANCEL);
    assert_int_equal(s.finish_ms, T0 + 500);
    assert_int_equal(s.progress, 25);
    sim_task_free(t);
}

/*
 * sim_task_busy_until() is what the account limits count with: a task is
 * before it exactly when a fetch shows NOT_START, SUBMITTED or
 * IN_PROGRESS. Checked around every edge, for each magic word and for a
 * zero queue and a zero duration.
 */
static void test_busy_until_matches_snap(void **state)
{
    static const char *const prompts[] = {"a cat", "epic fail", "banned",
                                          "forever", "vanish"};
    static const struct sim_timing timings[] = {
        {.duration_ms = 1000, .queue_ms = 200, .steps = 4},
        {.duration_ms = 1000, .queue_ms = 0, .steps = 4},
        {.duration_ms = 0, .queue_ms = 0, .steps = 1},
        {.duration_ms = 300, .queue_ms = 900, .steps = 2},
    };
    (void)state;

    for (size_t p = 0; p < sizeof(prompts) / sizeof(prompts[0]); p++) {
        for (size_t k = 0; k < sizeof(timings) / sizeof(timings[0]); k++) {
            struct sim_task *t = task(SIM_ACTION_IMAGINE, prompts[p]);
            int64_t until = sim_task_busy_until(t, &timings[k]);

            if (t->outcome == SIM_OUTCOME_VANISH) {
                assert_int_equal(until, 0); /* never shown, never counted */
                sim_task_free(t);
                continue;
            }
            for (int64_t el = 0; el <= 2000; el++) {
                struct sim_snap s;
                bool busy;

                sim_task_snap(t, &timings[k], T0 + el, &s);
                busy = s.status == SIM_STATUS_NOT_START ||
                       s.status == SIM_STATUS_SUBMITTED ||
                       s.status == SIM_STATUS_IN_PROGRESS;
                assert_int_equal(busy, T0 + el < until);
            }
            t->modal = true;
            assert_int_equal(sim_task_busy_until(t, &timings[k]), 0);
            sim_task_free(t);
        }
    }
}

static int drops;

static void count_drop(struct sim_task *t, void *ctx)
{
    assert_ptr_equal(ctx, &drops);
    assert_non_null(t);
    drops++;
}

/* The drop hook sees every task the table frees, and only those. */
static void test_table_drop_hook(void **state)
{
    struct sim_table *tab = sim_table_new(2);
    (void)state;

    sim_table_set_drop_hook(tab, count_drop, &drops);
    drops = 0;
    for (uint64_t i = 1; i <= 5; i++)
        sim_table_add(tab, sim_task_new(i, SIM_ACTION_IMAGINE, "x", NULL));
    assert_int_equal(drops, 3);
    assert_null(sim_table_find(tab, 3));
    assert_non_null(sim_table_find(tab, 4));
    assert_int_equal(sim_table_clear(tab), 2);
    assert_int_equal(drops, 5);
    sim_table_add(tab, sim_task_new(9, SIM_ACTION_IMAGINE, "x", NULL));
    sim_table_free(tab);
    assert_int_equal(drops, 6);
}

static void test_ids(void **state)
{
    struct sim_table *tab = sim_table_new(10);
    uint64_t a = sim_table_next_id(tab, T0);
    uint64_t b = sim_table_next_id(tab, T0);
    uint64_t c = sim_table_next_id(tab, T0 - 5); /* clock went back */
    char buf[24];
    uint64_t v;
    (void)state;

    assert_int_equal(a, UINT64_C(1700000000000000));
    assert_int_equal(b, a + 1);
    assert_int_equal(c, a + 2);
    sim_id_format(a, buf, sizeof(buf));
    assert_string_equal(buf, "1700000000000000");
    assert_int_equal(strlen(buf), 16);
    assert_int_equal(sim_id_parse(buf, 16, &v), 0);
    assert_int_equal(v, a);
    assert_int_equal(sim_id_parse("0123", 4, &v), -1);
    assert_int_equal(sim_id_parse("12a", 3, &v), -1);
    assert_int_equal(sim_id_parse("", 0, &v), -1);
    assert_int_equal(sim_id_parse("12345678901234567890", 20, &v), -1);
    sim_table_free(tab);
}

static void test_table(void **state)
{
    struct sim_table *tab = sim_table_new(3000);
    (void)state;

    for (uint64_t i = 1; i <= 5000; i++) {
        struct sim_task *t = sim_task_new(i, SIM_ACTION_IMAGINE, "p", NULL);

        sim_table_add(tab, t);
    }
    assert_int_equal(sim_table_count(tab), 3000);
    assert_null(sim_table_find(tab, 1));    /* evicted, oldest first */
    assert_null(sim_table_find(tab, 2000)); /* evicted */
    assert_non_null(sim_table_find(tab, 2001));
    assert_int_equal(sim_table_find(tab, 4242)->id, 4242);
    assert_null(sim_table_find(tab, 5001));
    assert_int_equal(sim_table_clear(tab), 3000);
    assert_int_equal(sim_table_count(tab), 0);
    assert_null(sim_table_find(tab, 4242));
    sim_table_free(tab);
    sim_table_free(NULL);
}

static void test_buttons_and_actions(void **state)
{
    struct sim_task *t = task(SIM_ACTION_IMAGINE, "a cat");
    struct sim_button b[SIM_MAX_BUTTONS];
    struct sim_button_action act;
    char hash[SIM_HASH_LEN + 1];
    char want[SIM_CUSTOM_ID_MAX];
    size_t n;
    char *p;
    (void)state;

    sim_content_hash(t->id, hash);
    assert_int_equal(strlen(hash), 36);
    assert_int_equal(hash[8], '-');
    n = sim_content_buttons(t, b);
    assert_int_equal(n, 9);
    snprintf(want, sizeof(want), "MJ::JOB::upsample::1::%s", hash);
    assert_string_equal(b[0].custom_id, want);
    assert_string_equal(b[0].label, "U1");
    snprintf(want, sizeof(want), "MJ::JOB::reroll::0::%s::SOLO", hash);
    assert_string_equal(b[4].custom_id, want);
    assert_string_equal(b[4].emoji, "\xf0\x9f\x94\x84");
    assert_string_equal(b[8].label, "V4");

    assert_int_equal(sim_content_action_of(t, b[1].custom_id, &act), 0);
    assert_int_equal(act.kind, SIM_BUTTON_JOB);
    assert_int_equal(act.action, SIM_ACTION_UPSCALE);
    assert_int_equal(act.index, 2);
    assert_int_equal(sim_content_action_of(t, "MJ::JOB::upsample::1::x", &act),
                     -1);

    t->action = SIM_ACTION_UPSCALE;
    n = sim_content_buttons(t, b);
    assert_int_equal(n, 6);
    snprintf(want, sizeof(want), "MJ::CustomZoom::%s", hash);
    assert_string_equal(b[4].custom_id, want);
    assert_int_equal(sim_content_action_of(t, want, &act), 0);
    assert_int_equal(act.kind, SIM_BUTTON_MODAL);
    assert_int_equal(act.action, SIM_ACTION_ZOOM);
    snprintf(want, sizeof(want), "MJ::Inpaint::1::%s::SOLO", hash);
    assert_int_equal(sim_content_action_of(t, want, &act), 0);
    assert_int_equal(act.action, SIM_ACTION_INPAINT);

    t->action = SIM_ACTION_DESCRIBE;
    assert_int_equal(sim_content_buttons(t, b), 4);
    assert_int_equal(sim_content_action_of(t, "MJ::Job::PicReader::3", &act),
                     0);
    assert_int_equal(act.kind, SIM_BUTTON_PIC_READER);
    p = sim_content_final_prompt(t);
    assert_non_null(strstr(p, "1\xef\xb8\x8f\xe2\x83\xa3 "));
    assert_non_null(strstr(p, "\n\n4\xef\xb8\x8f\xe2\x83\xa3 "));
    free(p);

    t->action = SIM_ACTION_SHORTEN;
    sim_task_set_prompt(t, "a red cat, sitting --ar 2:3");
    assert_int_equal(sim_content_buttons(t, b), 5);
    p = sim_content_final_prompt(t);
    assert_string_equal(p, "**Important tokens**\na, red, cat, sitting\n\n"
                           "**Shortened prompts**\n"
                           "1\xef\xb8\x8f\xe2\x83\xa3 a red cat sitting\n\n"
                           "2\xef\xb8\x8f\xe2\x83\xa3 a red cat\n\n"
                           "3\xef\xb8\x8f\xe2\x83\xa3 a red\n\n"
                           "4\xef\xb8\x8f\xe2\x83\xa3 a\n\n"
                           "5\xef\xb8\x8f\xe2\x83\xa3 a");
    free(p);
    sim_task_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timeline_normal),
        cmocka_unit_test(test_timeline_zero_duration),
        cmocka_unit_test(test_timeline_magic_words),
        cmocka_unit_test(test_timeline_modal_and_cancel),
        cmocka_unit_test(test_busy_until_matches_snap),
        cmocka_unit_test(test_table_drop_hook),
        cmocka_unit_test(test_ids),
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_buttons_and_actions),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
