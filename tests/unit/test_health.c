#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "health.h"

/* The account health state machine: breaker, rotation, probes. */

static const struct health_params P = {
    .failures = 3, .open_ms = 1000, .probe_ms = 60000};

static void test_starts_ok(void **state)
{
    struct health h;

    health_init(&h);
    assert_int_equal(h.state, HEALTH_OK);
    assert_true(health_can_submit(&h));
    assert_false(health_probe_due(&h, 1000000));
    assert_string_equal(health_state_name(h.state), "ok");
}

static void test_breaker_opens_after_consecutive_failures(void **state)
{
    struct health h;

    health_init(&h);
    assert_int_equal(
        health_report(&h, &P, HEALTH_SIG_TRANSIENT, "HTTP 500", 10),
        HEALTH_SAME);
    assert_int_equal(
        health_report(&h, &P, HEALTH_SIG_TRANSIENT, "HTTP 500", 20),
        HEALTH_SAME);
    /* A success in between starts the count again. */
    assert_int_equal(health_report(&h, &P, HEALTH_SIG_OK, NULL, 30),
                     HEALTH_SAME);
    assert_int_equal(
        health_report(&h, &P, HEALTH_SIG_TRANSIENT, "HTTP 500", 40),
        HEALTH_SAME);
    assert_int_equal(
        health_report(&h, &P, HEALTH_SIG_TRANSIENT, "HTTP 500", 50),
        HEALTH_SAME);
    /* Rate limits and full queues say nothing about the account. */
    assert_int_equal(health_report(&h, &P, HEALTH_SIG_NONE, NULL, 55),
                     HEALTH_SAME);
    assert_int_equal(health_report(&h, &P, HEALTH_SIG_TRANSIENT, "timeout", 60),
                     HEALTH_OPENED);
    assert_int_equal(h.state, HEALTH_OPEN);
    assert_false(health_can_submit(&h));
    assert_string_equal(h.reason, "timeout");
    assert_string_equal(health_state_name(h.state), "breaker open");
    /* Running polls that succeed do not close it: only the probe does. */
    assert_int_equal(health_report(&h, &P, HEALTH_SIG_OK, NULL, 70),
                     HEALTH_SAME);
    assert_int_equal(h.state, HEALTH_OPEN);
    assert_false(health_probe_due(&h, 1059));
    assert_true(health_probe_due(&h, 1060));
}

static void test_probe_closes_or_doubles(void **state)
{
    struct health h;

    health_init(&h);
    for (int i = 0; i < 3; i++)
        health_report(&h, &P, HEALTH_SIG_TRANSIENT, "HTTP 502", 0);
    assert_int_equal(h.state, HEALTH_OPEN);
    assert_int_equal(h.probe_at, 1000);
    health_probe_started(&h);
    assert_false(health_probe_due(&h, 5000)); /* one probe at a time */
    assert_int_equal(
        health_probe_done(&h, &P, HEALTH_SIG_TRANSIENT, "HTTP 502", 1000),
        HEALTH_SAME);
    assert_int_equal(h.probe_at, 3000); /* doubled */
    health_probe_started(&h);
    health_probe_done(&h, &P, HEALTH_SIG_TRANSIENT, "HTTP 502", 3000);
    assert_int_equal(h.probe_at, 7000);
    for (int i = 0; i < 10; i++) {
        health_probe_started(&h);
        health_probe_done(&h, &P, HEALTH_SIG_TRANSIENT, "x", 0);
    }
    assert_int_equal(h.probe_at, 32000); /* capped at 32 times */
    health_probe_started(&h);
    assert_int_equal(health_probe_done(&h, &P, HEALTH_SIG_OK, NULL, 40000),
                     HEALTH_CLOSED);
    assert_true(health_can_submit(&h));
    assert_string_equal(h.reason, "");
}

static void test_key_refused_leaves_rotation(void **state)
{
    struct health h;

    health_init(&h);
    assert_int_equal(
        health_report(&h, &P, HEALTH_SIG_AUTH, "key refused (HTTP 401)", 100),
        HEALTH_LEFT);
    assert_int_equal(h.state, HEALTH_OUT);
    assert_false(health_can_submit(&h));
    assert_string_equal(health_state_name(h.state), "out of rotation");
    assert_false(health_probe_due(&h, 60099));
    assert_true(health_probe_due(&h, 60100));
    /* Still refused: stays out, probed again a period later. */
    health_probe_started(&h);
    assert_int_equal(health_probe_done(&h, &P, HEALTH_SIG_AUTH,
                                       "key refused (HTTP 403)", 60100),
                     HEALTH_SAME);
    assert_int_equal(h.probe_at, 120100);
    assert_string_equal(h.reason, "key refused (HTTP 403)");
    /* Transient trouble while out: probed again later, still out. */
    health_probe_started(&h);
    health_probe_done(&h, &P, HEALTH_SIG_TRANSIENT, "HTTP 500", 120100);
    assert_int_equal(h.state, HEALTH_OUT);
    health_probe_started(&h);
    assert_int_equal(health_probe_done(&h, &P, HEALTH_SIG_OK, NULL, 180100),
                     HEALTH_RETURNED);
    assert_true(health_can_submit(&h));
}

static void test_quota_leaves_and_returns_on_trial(void **state)
{
    struct health h;

    health_init(&h);
    assert_int_equal(
        health_report(&h, &P, HEALTH_SIG_QUOTA, "quota_not_enough", 0),
        HEALTH_LEFT);
    /* Already out: a second refusal changes nothing but the reason. */
    assert_int_equal(health_report(&h, &P, HEALTH_SIG_QUOTA, "quota again", 10),
                     HEALTH_SAME);
    health_probe_started(&h);
    assert_int_equal(health_probe_done(&h, &P, HEALTH_SIG_OK, NULL, 60010),
                     HEALTH_RETURNED);
    /* The trial submit is refused again: out again. */
    assert_int_equal(
        health_report(&h, &P, HEALTH_SIG_QUOTA, "quota_not_enough", 60020),
        HEALTH_LEFT);
}

static void test_open_breaker_probe_hears_key_refused(void **state)
{
    struct health h;

    health_init(&h);
    for (int i = 0; i < 3; i++)
        health_report(&h, &P, HEALTH_SIG_TRANSIENT, "reset", 0);
    health_probe_started(&h);
    assert_int_equal(
        health_probe_done(&h, &P, HEALTH_SIG_AUTH, "key refused", 1000),
        HEALTH_LEFT);
    assert_int_equal(h.state, HEALTH_OUT);
    assert_int_equal(h.probe_at, 61000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_starts_ok),
        cmocka_unit_test(test_breaker_opens_after_consecutive_failures),
        cmocka_unit_test(test_probe_closes_or_doubles),
        cmocka_unit_test(test_key_refused_leaves_rotation),
        cmocka_unit_test(test_quota_leaves_and_returns_on_trial),
        cmocka_unit_test(test_open_breaker_probe_hears_key_refused),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
