/* Unit tests for src/backoff.c: poll schedule and jittered retry delays. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <limits.h>
#include <math.h>

#include <cmocka.h>

#include "backoff.h"

#define RND_TOP 0.999999

/* ---- backoff_poll_delay ---- */

static void test_poll_schedule_indexes(void **state)
{
    static const long sched[] = {3000, 2000, 5000, 10000};
    (void)state;

    assert_int_equal(backoff_poll_delay(sched, 4, 0), 3000);
    assert_int_equal(backoff_poll_delay(sched, 4, 1), 2000);
    assert_int_equal(backoff_poll_delay(sched, 4, 2), 5000);
    assert_int_equal(backoff_poll_delay(sched, 4, 3), 10000);
}

static void test_poll_last_value_repeats(void **state)
{
    static const long sched[] = {3000, 2000, 5000, 10000};
    (void)state;

    assert_int_equal(backoff_poll_delay(sched, 4, 4), 10000);
    assert_int_equal(backoff_poll_delay(sched, 4, 100), 10000);
    assert_int_equal(backoff_poll_delay(sched, 4, UINT_MAX), 10000);
    /* A shorter n uses only the first n values. */
    assert_int_equal(backoff_poll_delay(sched, 2, 1), 2000);
    assert_int_equal(backoff_poll_delay(sched, 2, 2), 2000);
    assert_int_equal(backoff_poll_delay(sched, 2, 3), 2000);
}

static void test_poll_empty_schedule(void **state)
{
    static const long sched[] = {7000};
    (void)state;

    assert_int_equal(backoff_poll_delay(NULL, 0, 0), 0);
    assert_int_equal(backoff_poll_delay(NULL, 0, 5), 0);
    assert_int_equal(backoff_poll_delay(sched, 0, 0), 0);
    assert_int_equal(backoff_poll_delay(sched, 0, UINT_MAX), 0);
}

static void test_poll_single_value(void **state)
{
    static const long zero[] = {0};
    static const long one[] = {1500};
    (void)state;

    assert_int_equal(backoff_poll_delay(zero, 1, 0), 0);
    assert_int_equal(backoff_poll_delay(zero, 1, 1), 0);
    assert_int_equal(backoff_poll_delay(zero, 1, UINT_MAX), 0);
    assert_int_equal(backoff_poll_delay(one, 1, 0), 1500);
    assert_int_equal(backoff_poll_delay(one, 1, 9), 1500);
}

/* ---- backoff_retry_delay ---- */

/*
 * Checks that the delays for rnd 0 and rnd RND_TOP both lie in
 * [nominal/2, nominal] and together span it (whichever end each maps to).
 */
static void check_retry(long base, long max, unsigned attempt, long nominal,
                        const char *file, int line)
{
    long lo = nominal / 2;
    long a = backoff_retry_delay(base, max, attempt, 0.0);
    long b = backoff_retry_delay(base, max, attempt, RND_TOP);
    long slack = nominal / 1000 + 1;

    if (a < lo || a > nominal || b < lo || b > nominal)
        fail_msg("%s:%d: base %ld max %ld attempt %u: delays %ld, %ld not in "
                 "[%ld, %ld]",
                 file, line, base, max, attempt, a, b, lo, nominal);
    if ((a < b ? a : b) > lo + slack || (a > b ? a : b) < nominal - slack)
        fail_msg("%s:%d: base %ld max %ld attempt %u: delays %ld, %ld do not "
                 "span [%ld, %ld]",
                 file, line, base, max, attempt, a, b, lo, nominal);
}

#define assert_retry(base, max, attempt, nominal)                              \
    check_retry((base), (max), (attempt), (nominal), __FILE__, __LINE__)

static void test_retry_first_attempt_bounds(void **state)
{
    (void)state;
    assert_retry(1000, 60000, 0, 1000);
    assert_retry(250, 60000, 0, 250);
    assert_retry(1, 60000, 0, 1);
}

static void test_retry_doubles_per_attempt(void **state)
{
    long nominal = 1000;
    (void)state;

    for (unsigned attempt = 0; attempt < 6; attempt++) {
        assert_retry(1000, 64000, attempt, nominal);
        nominal *= 2;
    }
    assert_retry(1000, 64000, 6, 64000);
}

static void test_retry_capped_at_max(void **state)
{
    (void)state;
    /* 1000 * 2^6 = 64000 > 60000: capped from attempt 6 on. */
    assert_retry(1000, 60000, 5, 32000);
    assert_retry(1000, 60000, 6, 60000);
    assert_retry(1000, 60000, 7, 60000);
    assert_retry(1000, 60000, 30, 60000);
    /* base above max: max from the first retry. */
    assert_retry(5000, 3000, 0, 3000);
    /* max 0 means no delay at all. */
    assert_int_equal(backoff_retry_delay(1000, 0, 3, 0.5), 0);
}

static void test_retry_huge_attempts_no_overflow(void **state)
{
    static const unsigned attempts[] = {31, 32,   62,           63,      64,
                                        65, 1000, UINT_MAX / 2, UINT_MAX};
    (void)state;

    for (size_t i = 0; i < sizeof(attempts) / sizeof(attempts[0]); i++) {
        assert_retry(1000, 60000, attempts[i], 60000);
        assert_retry(1, 60000, attempts[i], 60000);
        assert_retry(LONG_MAX / 3, LONG_MAX, attempts[i], LONG_MAX);
    }
    /* With no practical cap the doubling must stop at LONG_MAX, not wrap:
     * 1000 * 2^53 still fits, one more doubling would not. */
    assert_retry(1000, LONG_MAX, 52, 1000L << 52);
    assert_retry(1000, LONG_MAX, 53, 1000L << 53);
    for (unsigned a = 54; a < 70; a++)
        assert_retry(1000, LONG_MAX, a, LONG_MAX);
    assert_retry(1000, LONG_MAX, UINT_MAX, LONG_MAX);
    assert_retry(1, LONG_MAX, 62, 1L << 62);
    assert_retry(1, LONG_MAX, 63, LONG_MAX);
    assert_retry(1, LONG_MAX, UINT_MAX, LONG_MAX);
}

static void test_retry_base_zero(void **state)
{
    static const unsigned attempts[] = {0, 1, 5, 64, 1000};
    (void)state;

    for (size_t i = 0; i < sizeof(attempts) / sizeof(attempts[0]); i++) {
        assert_int_equal(backoff_retry_delay(0, 60000, attempts[i], 0.0), 0);
        assert_int_equal(backoff_retry_delay(0, 60000, attempts[i], RND_TOP),
                         0);
    }
}

static void test_retry_rnd_out_of_range(void **state)
{
    const double bad[] = {-0.5,  -1e300,    1.0,      1.5,
                          1e300, -INFINITY, INFINITY, NAN};
    (void)state;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        long d = backoff_retry_delay(1000, 60000, 2, bad[i]);

        if (d < 2000 || d > 4000)
            fail_msg("rnd %g: delay %ld not in [2000, 4000]", bad[i], d);
    }
}

/* ---- backoff_random ---- */

static void test_random_range_and_spread(void **state)
{
    double lo = 1, hi = 0, sum = 0, first = backoff_random();
    int distinct = 0;
    (void)state;

    for (int i = 0; i < 10000; i++) {
        double r = backoff_random();

        if (!(r >= 0.0 && r < 1.0))
            fail_msg("draw %d: %.17g not in [0, 1)", i, r);
        if (r < lo)
            lo = r;
        if (r > hi)
            hi = r;
        if (r != first)
            distinct++;
        sum += r;
    }
    assert_true(distinct > 9990);
    assert_true(lo < 0.01);
    assert_true(hi > 0.99);
    /* The mean of 10,000 uniform draws is 0.5 +- 0.003 (one sigma). */
    assert_true(sum / 10000 > 0.47 && sum / 10000 < 0.53);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_poll_schedule_indexes),
        cmocka_unit_test(test_poll_last_value_repeats),
        cmocka_unit_test(test_poll_empty_schedule),
        cmocka_unit_test(test_poll_single_value),
        cmocka_unit_test(test_retry_first_attempt_bounds),
        cmocka_unit_test(test_retry_doubles_per_attempt),
        cmocka_unit_test(test_retry_capped_at_max),
        cmocka_unit_test(test_retry_huge_attempts_no_overflow),
        cmocka_unit_test(test_retry_base_zero),
        cmocka_unit_test(test_retry_rnd_out_of_range),
        cmocka_unit_test(test_random_range_and_spread),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
