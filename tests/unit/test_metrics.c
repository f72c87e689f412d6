/* Unit tests for src/metrics.c (snapshots, merge, histograms, Prometheus
 * text) and src/queue_age.c (the oldest-job age estimator). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ctype.h>
#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "queue_age.h"

static const char *const one_account[] = {"default"};

static int setup(void **state)
{
    (void)state;
    metrics_reset();
    metrics_set_accounts(one_account, 1);
    return 0;
}

/* ---- snapshots -------------------------------------------------------- */

static void fill_some(void)
{
    metrics_job_taken();
    metrics_job_taken();
    metrics_job_taken();
    metrics_job_finished(METRICS_SUCCESS, 2500);
    metrics_job_finished(METRICS_DUPLICATE, 10);
    metrics_job_handed_back();
    metrics_retry(METRICS_RETRY_POLL);
    metrics_recovered();
    metrics_redis_reconnected();
    metrics_queue_wait(700);
    metrics_upstream(0, METRICS_EP_SUBMIT, METRICS_OUT_OK);
    metrics_upstream(0, METRICS_EP_FETCH, METRICS_OUT_NOT_FOUND);
    metrics_set_in_flight(1);
}

static void test_round_trip(void **state)
{
    struct metrics_snapshot *a = metrics_snapshot_new();
    struct metrics_snapshot *b = metrics_snapshot_new();
    unsigned char buf[METRICS_SNAPSHOT_MAX], buf2[METRICS_SNAPSHOT_MAX];
    size_t len, len2;

    (void)state;
    fill_some();
    metrics_upstream(0, METRICS_EP_FETCH, METRICS_OUT_OK);
    for (int i = 0; i < 300; i++) /* a multi-byte varint */
        metrics_upstream(0, METRICS_EP_FETCH, METRICS_OUT_OK);
    metrics_snapshot_take(a);
    len = metrics_snapshot_encode(a, buf, sizeof(buf));
    assert_true(len > 4 && len < 200); /* compact: only non-zero values */
    assert_int_equal(metrics_snapshot_decode(b, buf, len), 0);
    assert_int_equal(metrics_snapshot_taken(b), 3);
    assert_int_equal(metrics_snapshot_finished(b, METRICS_SUCCESS), 1);
    assert_int_equal(metrics_snapshot_finished(b, METRICS_DUPLICATE), 1);
    assert_int_equal(metrics_snapshot_finished(b, METRICS_FAILURE), 0);
    assert_int_equal(
        metrics_snapshot_upstream(b, 0, METRICS_EP_FETCH, METRICS_OUT_OK), 301);
    assert_int_equal(metrics_snapshot_in_flight(b), 1);
    /* Re-encoding the decoded snapshot gives the same bytes. */
    len2 = metrics_snapshot_encode(b, buf2, sizeof(buf2));
    assert_int_equal(len, len2);
    assert_memory_equal(buf, buf2, len);
    /* Too small a buffer: 0, never a partial snapshot. */
    assert_int_equal(metrics_snapshot_encode(a, buf, 6), 0);
    metrics_snapshot_free(a);
    metrics_snapshot_free(b);
}

static void test_decode_errors(void **state)
{
    struct metrics_snapshot *a = metrics_snapshot_new();
    struct metrics_snapshot *b = metrics_snapshot_new();
    unsigned char buf[METRICS_SNAPSHOT_MAX];
    size_t len;

    (void)state;
    fill_some();
    metrics_snapshot_take(a);
    len = metrics_snapshot_encode(a, buf, sizeof(buf));
    assert_int_equal(metrics_snapshot_decode(b, buf, len), 0);

    /* Truncated inside a varint: EINVAL, out unchanged. */
    metrics_snapshot_clear(b);
    buf[len - 1] |= 0x80;
    assert_int_equal(metrics_snapshot_decode(b, buf, len), -EINVAL);
    assert_int_equal(metrics_snapshot_taken(b), 0);
    buf[len - 1] &= 0x7f;
    /* Bad magic. */
    buf[0] = 'X';
    assert_int_equal(metrics_snapshot_decode(b, buf, len), -EINVAL);
    buf[0] = 'M';
    /* Another layout (another mjq version): EPROTO. */
    buf[4] ^= 1;
    assert_int_equal(metrics_snapshot_decode(b, buf, len), -EPROTO);
    buf[4] ^= 1;
    /* An index past the end. */
    {
        unsigned char bad[16];
        size_t n = 0;

        memcpy(bad, buf, 4);
        n = 4;
        /* the layout size as encoded */
        while (buf[n] & 0x80) {
            bad[n] = buf[n];
            n++;
        }
        bad[n] = buf[n];
        n++;
        bad[n++] = 0xff; /* gap 16383 */
        bad[n++] = 0x7f;
        bad[n++] = 1;
        assert_int_equal(metrics_snapshot_decode(b, bad, n), -EINVAL);
    }
    assert_int_equal(metrics_snapshot_decode(b, buf, 3), -EINVAL);
    metrics_snapshot_free(a);
    metrics_snapshot_free(b);
}

/* What a supervisor does: live workers' last snapshots plus the retired
 * totals of the exited ones; counters never go backwards. */
static void test_merge_and_retire(void **state)
{
    struct metrics_snapshot *w1 = metrics_snapshot_new();
    struct metrics_snapshot *w2 = metrics_snapshot_new();
    struct metrics_snapshot *retired = metrics_snapshot_new();
    struct metrics_snapshot *total = metrics_snapshot_new();

    (void)state;
    for (int i = 0; i < 5; i++)
        metrics_job_taken();
    metrics_set_in_flight(2);
    metrics_snapshot_take(w1);
    metrics_reset();
    for (int i = 0; i < 3; i++)
        metrics_job_taken();
    metrics_job_finished(METRICS_SUCCESS, 1000);
    metrics_set_in_flight(4);
    metrics_snapshot_take(w2);

    metrics_snapshot_add(total, retired);
    metrics_snapshot_add(total, w1);
    metrics_snapshot_add(total, w2);
    assert_int_equal(metrics_snapshot_taken(total), 8);
    assert_int_equal(metrics_snapshot_in_flight(total), 6);

    /* w1 exits: its counters stay, its in-flight gauge goes. */
    metrics_snapshot_retire(retired, w1);
    metrics_snapshot_clear(w1); /* its replacement starts from zero */
    metrics_reset();
    metrics_job_taken();
    metrics_snapshot_take(w1);
    metrics_snapshot_clear(total);
    metrics_snapshot_add(total, retired);
    metrics_snapshot_add(total, w1);
    metrics_snapshot_add(total, w2);
    assert_int_equal(metrics_snapshot_taken(total), 9);
    assert_int_equal(metrics_snapshot_in_flight(total), 4);
    assert_int_equal(metrics_snapshot_finished(total, METRICS_SUCCESS), 1);
    metrics_snapshot_free(w1);
    metrics_snapshot_free(w2);
    metrics_snapshot_free(retired);
    metrics_snapshot_free(total);
}

static void test_status_names(void **state)
{
    enum metrics_status s;

    (void)state;
    for (int i = 0; i < METRICS_STATUS_COUNT; i++) {
        assert_int_equal(metrics_status_parse(
                             metrics_status_name((enum metrics_status)i), &s),
                         0);
        assert_int_equal(s, i);
    }
    assert_int_equal(metrics_status_parse("success", &s), -1);
    assert_string_equal(metrics_status_name(METRICS_STATUS_COUNT), "");
}

/* ---- rendering ---------------------------------------------------------- */

static char *render(const char *account_name, int nqueues)
{
    static const char *names[2];
    struct metrics_snapshot *s = metrics_snapshot_new();
    struct metrics_queue q[2] = {
        {"default", 1, 3, 12.5},
        {"q\"x\\y", 1, 0, 0},
    };
    struct metrics_view v = {"0.1.0", 2, 1, 0, 1, q, (size_t)nqueues, s};
    size_t len;
    char *text;

    names[0] = "default";
    names[1] = account_name;
    metrics_set_accounts(names, 2);
    metrics_snapshot_take(s);
    text = metrics_render(&v, &len);
    assert_int_equal(strlen(text), len);
    metrics_snapshot_free(s);
    return text;
}

/* The line of text that starts with prefix (NULL if none). */
static const char *line_of(const char *text, const char *prefix)
{
    const char *p = text;

    while (p != NULL && *p != '\0') {
        if (strncmp(p, prefix, strlen(prefix)) == 0)
            return p;
        p = strchr(p, '\n');
        if (p != NULL)
            p++;
    }
    return NULL;
}

static void test_histogram_buckets(void **state)
{
    char *text;

    (void)state;
    metrics_queue_wait(100);     /* on a bound: le is inclusive */
    metrics_queue_wait(101);     /* next bucket */
    metrics_queue_wait(-5);      /* a clock step back counts as 0 */
    metrics_queue_wait(7200000); /* two hours: +Inf only */
    metrics_job_finished(METRICS_SUCCESS, 30000);
    text = render("a", 1);
    assert_non_null(
        line_of(text, "mjq_queue_wait_seconds_bucket{le=\"0.1\"} 2\n"));
    assert_non_null(
        line_of(text, "mjq_queue_wait_seconds_bucket{le=\"0.5\"} 3\n"));
    assert_non_null(
        line_of(text, "mjq_queue_wait_seconds_bucket{le=\"3600\"} 3\n"));
    assert_non_null(
        line_of(text, "mjq_queue_wait_seconds_bucket{le=\"+Inf\"} 4\n"));
    assert_non_null(line_of(text, "mjq_queue_wait_seconds_count 4\n"));
    assert_non_null(line_of(text, "mjq_queue_wait_seconds_sum 7200.201\n"));
    assert_non_null(
        line_of(text, "mjq_job_duration_seconds_bucket{le=\"20\"} 0\n"));
    assert_non_null(
        line_of(text, "mjq_job_duration_seconds_bucket{le=\"30\"} 1\n"));
    assert_non_null(line_of(text, "mjq_job_duration_seconds_sum 30.000\n"));
    free(text);
}

/* A strict reader of the text format 0.0.4: each line is a # HELP or
 * # TYPE (once per family, HELP then TYPE, before its samples), or a
 * sample of a declared family with well-formed, escaped labels and a
 * float value. Returns NULL, or the offending line. */
static const char *check_exposition(const char *text, char *why, size_t whylen)
{
    static char line[1024];
    char families[64][128], types[64][16];
    size_t nfam = 0;
    const char *p = text;
    regex_t sample;

    assert_int_equal(
        regcomp(&sample,
                "^([a-zA-Z_:][a-zA-Z0-9_:]*)"
                "(\\{([a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\\n]|\\\\[\\\\\"n])*\""
                "(,[a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\\n]|\\\\[\\\\\"n])*\")*)?"
                "\\})? "
                "(-?[0-9]+(\\.[0-9]+)?([eE][-+]?[0-9]+)?|\\+Inf|-Inf|NaN)$",
                REG_EXTENDED),
        0);
    while (*p != '\0') {
        size_t n = strcspn(p, "\n");
        regmatch_t m[2];

        if (p[n] != '\n') {
            snprintf(why, whylen, "no newline at the end");
            regfree(&sample);
            return p;
        }
        snprintf(line, sizeof(line), "%.*s", (int)n, p);
        p += n + 1;
        if (strncmp(line, "# HELP ", 7) == 0) {
            char name[128];

            if (sscanf(line + 7, "%127s", name) != 1 || nfam == 64) {
                snprintf(why, whylen, "bad HELP");
                goto bad;
            }
            for (size_t i = 0; i < nfam; i++)
                if (strcmp(families[i], name) == 0) {
                    snprintf(why, whylen, "family declared twice");
                    goto bad;
                }
            snprintf(families[nfam], sizeof(families[0]), "%s", name);
            types[nfam][0] = '\0';
            nfam++;
            continue;
        }
        if (strncmp(line, "# TYPE ", 7) == 0) {
            char name[128], type[16];

            if (sscanf(line + 7, "%127s %15s", name, type) != 2 || nfam == 0 ||
                strcmp(families[nfam - 1], name) != 0 ||
                (strcmp(type, "counter") != 0 && strcmp(type, "gauge") != 0 &&
                 strcmp(type, "histogram") != 0)) {
                snprintf(why, whylen, "TYPE without its HELP, or bad type");
                goto bad;
            }
            snprintf(types[nfam - 1], sizeof(types[0]), "%s", type);
            continue;
        }
        if (line[0] == '#' || regexec(&sample, line, 2, m, 0) != 0) {
            snprintf(why, whylen, "not a valid sample");
            goto bad;
        }
        {
            char name[128];
            size_t k = nfam;

            snprintf(name, sizeof(name), "%.*s", (int)(m[1].rm_eo - m[1].rm_so),
                     line);
            for (size_t i = 0; i < nfam; i++) {
                size_t fl = strlen(families[i]);

                if (strcmp(name, families[i]) == 0 ||
                    (strcmp(types[i], "histogram") == 0 &&
                     strncmp(name, families[i], fl) == 0 &&
                     (strcmp(name + fl, "_bucket") == 0 ||
                      strcmp(name + fl, "_sum") == 0 ||
                      strcmp(name + fl, "_count") == 0)))
                    k = i;
            }
            if (k == nfam || types[k][0] == '\0') {
                snprintf(why, whylen, "sample of an undeclared family");
                goto bad;
            }
            if (k != nfam - 1) {
                snprintf(why, whylen, "sample away from its family");
                goto bad;
            }
        }
    }
    regfree(&sample);
    return NULL;
bad:
    regfree(&sample);
    return line;
}

static void test_render_is_valid_exposition(void **state)
{
    char why[128] = "";
    const char *bad;
    char *text;

    (void)state;
    fill_some();
    text = render("acc \"one\"\\two\nthree", 2);
    bad = check_exposition(text, why, sizeof(why));
    if (bad != NULL)
        fail_msg("%s: %s", why, bad);
    /* Label values are escaped: quote, backslash, newline. */
    assert_non_null(line_of(
        text,
        "mjq_upstream_requests_total{account=\"acc \\\"one\\\"\\\\two\\nthree"
        "\",endpoint=\"submit\",outcome=\"ok\"} 0\n"));
    assert_non_null(
        line_of(text, "mjq_queue_depth{queue=\"q\\\"x\\\\y\"} 0\n"));
    assert_non_null(line_of(
        text, "mjq_upstream_requests_total{account=\"default\",endpoint="
              "\"fetch\",outcome=\"not_found\"} 1\n"));
    assert_non_null(line_of(text, "mjq_queue_oldest_age_seconds{queue="
                                  "\"default\"} 12.500\n"));
    assert_non_null(line_of(text, "mjq_jobs_taken_total 3\n"));
    assert_non_null(
        line_of(text, "mjq_jobs_finished_total{status=\"DUPLICATE\"} 1\n"));
    assert_non_null(line_of(text, "mjq_jobs_in_flight 1\n"));
    assert_non_null(line_of(text, "mjq_workers 2\n"));
    assert_non_null(line_of(text, "mjq_worker_restarts_total 1\n"));
    assert_non_null(line_of(text, "mjq_build_info{version=\"0.1.0\"} 1\n"));
    free(text);

    /* The validator itself refuses what it must. */
    assert_non_null(check_exposition("x 1\n", why, sizeof(why)));
    assert_non_null(check_exposition(
        "# HELP x h\n# TYPE x gauge\nx{a=\"\"\"} 1\n", why, sizeof(why)));
    assert_non_null(
        check_exposition("# HELP x h\n# TYPE x gauge\nx one\n", why, 128));
    assert_null(check_exposition("# HELP x h\n# TYPE x gauge\nx{a=\"\\n\"} 1\n",
                                 why, sizeof(why)));
}

/* An unsampled queue leaves its lines out; the families stay. */
static void test_render_unsampled_queue(void **state)
{
    struct metrics_snapshot *s = metrics_snapshot_new();
    struct metrics_queue q = {"default", 0, 0, 0};
    struct metrics_view v = {"0.1.0", 0, 0, 1, 0, &q, 1, s};
    char why[128];
    size_t len;
    char *text;

    (void)state;
    text = metrics_render(&v, &len);
    assert_null(check_exposition(text, why, sizeof(why)));
    assert_null(line_of(text, "mjq_queue_depth{"));
    assert_non_null(line_of(text, "# TYPE mjq_queue_depth gauge\n"));
    assert_non_null(line_of(text, "mjq_draining 1\n"));
    assert_non_null(line_of(text, "mjq_redis_up 0\n"));
    free(text);
    metrics_snapshot_free(s);
}

/* ---- the oldest-job age ------------------------------------------------- */

static void test_age_estimate(void **state)
{
    /* Pushes so far at each sample: 10 at t=1000, 12 at 2000, 15 at 5000. */
    const struct queue_age_sample s[] = {{1000, 10}, {2000, 12}, {5000, 15}};
    int lower;

    (void)state;
    /* Empty queue: 0, whatever the history. */
    assert_int_equal(queue_age_estimate(s, 3, 9000, 15, 0, &lower), 0);
    assert_int_equal(lower, 0);
    /* taken 10: the oldest waiting is push 11, first seen at 2000. */
    assert_int_equal(queue_age_estimate(s, 3, 9000, 10, 5, &lower), 7000);
    assert_int_equal(lower, 0);
    /* taken 12: push 13, seen at 5000. */
    assert_int_equal(queue_age_estimate(s, 3, 9000, 12, 3, &lower), 4000);
    assert_int_equal(lower, 0);
    /* taken 5: push 6 is older than the history: its oldest sample's age,
     * flagged as a lower bound. */
    assert_int_equal(queue_age_estimate(s, 3, 9000, 5, 10, &lower), 8000);
    assert_int_equal(lower, 1);
    /* taken 15, depth 1: push 16 was not sampled yet: 0. */
    assert_int_equal(queue_age_estimate(s, 3, 9000, 15, 1, &lower), 0);
    /* No history. */
    assert_int_equal(queue_age_estimate(s, 0, 9000, 0, 4, &lower), 0);
}

static void test_age_history(void **state)
{
    struct queue_age *h = queue_age_new();
    int lower;

    (void)state;
    queue_age_record(h, 0, 0, 0);    /* empty queue at start */
    queue_age_record(h, 1000, 0, 0); /* unchanged: not stored */
    assert_int_equal(queue_age_len(h), 1);
    queue_age_record(h, 2000, 0, 3); /* three pushed */
    queue_age_record(h, 3000, 1, 2); /* one taken: P unchanged */
    assert_int_equal(queue_age_len(h), 2);
    assert_int_equal(queue_age_oldest_ms(h, 10000, 1, 2, &lower), 8000);
    assert_int_equal(lower, 0);
    /* The counter went backwards (reset by hand, Redis lost its data):
     * the history starts again. */
    queue_age_record(h, 11000, 0, 1);
    assert_int_equal(queue_age_len(h), 1);
    assert_int_equal(queue_age_oldest_ms(h, 12000, 0, 1, &lower), 1000);
    assert_int_equal(lower, 1);
    queue_age_free(h);
}

/* Ten hours of one push per second, one take per second after a backlog
 * of an hour: the history stays bounded and the age of a job pushed long
 * ago stays within a few percent. */
static void test_age_thinning(void **state)
{
    struct queue_age *h = queue_age_new();
    int64_t now = 0;
    long long pushes = 0;
    int lower;

    (void)state;
    queue_age_record(h, now, 0, 0);
    for (int i = 0; i < 36000; i++) {
        now += 1000;
        pushes++;
        queue_age_record(h, now, 0, pushes);
        assert_true(queue_age_len(h) <= QUEUE_AGE_CAP);
    }
    /* Nothing taken: the oldest waiting job is push 1, 10 h old. */
    {
        int64_t age = queue_age_oldest_ms(h, now, 0, pushes, &lower);

        assert_int_equal(lower, 0);
        assert_true(age <= 36000000 && age >= 36000000 - 36000000 / 16);
    }
    /* 18000 taken: push 18001, made at t = 18001 s, 5 h ago. */
    {
        int64_t want = now - 18001 * 1000;
        int64_t age =
            queue_age_oldest_ms(h, now, 18000, pushes - 18000, &lower);

        assert_int_equal(lower, 0);
        assert_true(age <= want && age >= want - want / 16);
    }
    /* The newest push is known to the second. */
    assert_int_equal(queue_age_oldest_ms(h, now, pushes - 1, 1, &lower), 0);
    queue_age_free(h);
}

#define T(f) cmocka_unit_test_setup(f, setup)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_round_trip),
        T(test_decode_errors),
        T(test_merge_and_retire),
        T(test_status_names),
        T(test_histogram_buckets),
        T(test_render_is_valid_exposition),
        T(test_render_unsampled_queue),
        T(test_age_estimate),
        T(test_age_history),
        T(test_age_thinning),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
