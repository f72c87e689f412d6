/* Unit tests for src/job.c: the job format of CONTRACT.md section 1. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "job.h"

#define MAX_BYTES (1L << 20)

static int parse(const char *payload, struct job_spec *spec,
                 struct job_error *err)
{
    return job_parse(payload, strlen(payload), MAX_BYTES, spec, err);
}

/* A parsed spec must own nothing after a failure. */
static void assert_spec_empty(const struct job_spec *spec)
{
    assert_string_equal(spec->id, "");
    assert_null(spec->body);
    assert_null(spec->meta);
    assert_null(spec->reply_to);
}

/*
 * Checks that payload is INVALID, naming field, with a non-empty reason
 * that contains reason_sub (when non-NULL). Reports the caller's line.
 */
static void check_invalid(const char *payload, size_t len, const char *field,
                          const char *reason_sub, struct job_error *err_out,
                          const char *file, int line)
{
    struct job_spec spec;
    struct job_error err;
    int rc = job_parse(payload, len, MAX_BYTES, &spec, &err);

    if (rc != -1 || strcmp(err.field, field) != 0 || err.reason[0] == '\0' ||
        (reason_sub != NULL && strstr(err.reason, reason_sub) == NULL)) {
        job_spec_clear(&spec);
        fail_msg("%s:%d: payload %.200s: rc %d, field \"%s\" (want \"%s\"), "
                 "reason \"%s\" (want \"%s\" in it)",
                 file, line, payload, rc, err.field, field, err.reason,
                 reason_sub != NULL ? reason_sub : "");
    }
    assert_spec_empty(&spec);
    if (err_out != NULL)
        *err_out = err;
}

#define assert_invalid(payload, field)                                         \
    check_invalid((payload), strlen(payload), (field), NULL, NULL, __FILE__,   \
                  __LINE__)
#define assert_invalid_reason(payload, field, sub)                             \
    check_invalid((payload), strlen(payload), (field), (sub), NULL, __FILE__,  \
                  __LINE__)
#define assert_invalid_err(payload, field, err)                                \
    check_invalid((payload), strlen(payload), (field), NULL, (err), __FILE__,  \
                  __LINE__)

static void assert_body_equals(const struct job_spec *spec, const char *text)
{
    json_t *want = json_loads(text, 0, NULL);

    assert_non_null(want);
    assert_non_null(spec->body);
    assert_true(json_equal(spec->body, want));
    json_decref(want);
}

/* ---- valid jobs ---- */

static void test_valid_job_each_action(void **state)
{
    static const struct {
        const char *action;
        enum job_action want;
        const char *body;
    } cases[] = {
        {"imagine", ACTION_IMAGINE, "{\"prompt\":\"a cat --ar 16:9\"}"},
        {"blend", ACTION_BLEND,
         "{\"base64Array\":[\"data:image/png;base64,AAAA\","
         "\"data:image/png;base64,BBBB\"],\"dimensions\":\"SQUARE\"}"},
        {"describe", ACTION_DESCRIBE,
         "{\"base64\":\"data:image/png;base64,AAAA\"}"},
        {"shorten", ACTION_SHORTEN, "{\"prompt\":\"a very long prompt\"}"},
        {"action", ACTION_ACTION,
         "{\"taskId\":\"1320098173412546\","
         "\"customId\":\"MJ::JOB::upsample::1::26d5\"}"},
        {"modal", ACTION_MODAL,
         "{\"taskId\":\"1712205491372025\",\"prompt\":\"--zoom 2\"}"},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char payload[512];
        struct job_spec spec;
        struct job_error err;

        snprintf(payload, sizeof(payload),
                 "{\"id\":\"job-%zu\",\"action\":\"%s\",\"body\":%s}", i,
                 cases[i].action, cases[i].body);
        if (parse(payload, &spec, &err) != 0)
            fail_msg("%s rejected: field %s: %s", payload, err.field,
                     err.reason);
        char want_id[16];
        snprintf(want_id, sizeof(want_id), "job-%zu", i);
        assert_string_equal(spec.id, want_id);
        assert_int_equal(spec.action, cases[i].want);
        assert_body_equals(&spec, cases[i].body);
        assert_int_equal(spec.mode, MODE_DEFAULT);
        assert_int_equal(spec.timeout_ms, 0);
        assert_null(spec.meta);
        assert_null(spec.reply_to);
        job_spec_clear(&spec);
    }
}

static void test_valid_job_all_fields(void **state)
{
    const char *payload =
        "{\"id\":\"Order_42:v1.0-a\",\"action\":\"imagine\","
        "\"body\":{\"prompt\":\"cat\",\"botType\":\"MID_JOURNEY\"},"
        "\"mode\":\"relax\",\"timeout_s\":30,"
        "\"meta\":{\"user\":7,\"tags\":[\"a\",\"b\"]},"
        "\"reply_to\":\"svc-a.results_1\"}";
    struct job_spec spec;
    struct job_error err;
    json_t *meta;
    (void)state;

    assert_int_equal(parse(payload, &spec, &err), 0);
    assert_string_equal(spec.id, "Order_42:v1.0-a");
    assert_int_equal(spec.action, ACTION_IMAGINE);
    assert_body_equals(&spec,
                       "{\"prompt\":\"cat\",\"botType\":\"MID_JOURNEY\"}");
    assert_int_equal(spec.mode, MODE_RELAX);
    assert_int_equal(spec.timeout_ms, 30000);
    assert_non_null(spec.reply_to);
    assert_string_equal(spec.reply_to, "svc-a.results_1");
    meta = json_loads("{\"user\":7,\"tags\":[\"a\",\"b\"]}", 0, NULL);
    assert_non_null(spec.meta);
    assert_true(json_equal(spec.meta, meta));
    json_decref(meta);
    job_spec_clear(&spec);
}

static void test_valid_modes(void **state)
{
    static const struct {
        const char *name;
        enum mode want;
    } cases[] = {
        {"fast", MODE_FAST},
        {"relax", MODE_RELAX},
        {"turbo", MODE_TURBO},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char payload[256];
        struct job_spec spec;
        struct job_error err;

        snprintf(payload, sizeof(payload),
                 "{\"id\":\"m\",\"action\":\"imagine\",\"body\":{},"
                 "\"mode\":\"%s\"}",
                 cases[i].name);
        assert_int_equal(parse(payload, &spec, &err), 0);
        assert_int_equal(spec.mode, cases[i].want);
        assert_string_equal(job_mode_name(spec.mode), cases[i].name);
        job_spec_clear(&spec);
    }
    assert_string_equal(job_mode_name(MODE_DEFAULT), "");
}

static void test_mode_null_is_default(void **state)
{
    struct job_spec spec;
    struct job_error err;
    (void)state;

    assert_int_equal(parse("{\"id\":\"m\",\"action\":\"imagine\",\"body\":{},"
                           "\"mode\":null}",
                           &spec, &err),
                     0);
    assert_int_equal(spec.mode, MODE_DEFAULT);
    job_spec_clear(&spec);
}

static void test_parse_respects_len(void **state)
{
    /* Only the first len bytes are the payload: no NUL needed after it. */
    const char buf[] = "{\"id\":\"j\",\"action\":\"shorten\",\"body\":{}}"
                       "GARBAGE";
    struct job_spec spec;
    struct job_error err;
    (void)state;

    assert_int_equal(
        job_parse(buf, strlen(buf) - strlen("GARBAGE"), 0, &spec, &err), 0);
    assert_string_equal(spec.id, "j");
    assert_int_equal(spec.action, ACTION_SHORTEN);
    job_spec_clear(&spec);
}

/* ---- the payload as a whole ---- */

static void test_not_json_reports_position(void **state)
{
    const char *payload = "{\"id\":\"j\",\"action\":imagine}";
    json_error_t jerr;
    struct job_error err;
    char want[64];
    (void)state;

    assert_null(json_loads(payload, 0, &jerr));
    snprintf(want, sizeof(want), "position %d", jerr.position);
    assert_invalid_err(payload, "(payload)", &err);
    assert_non_null(strstr(err.reason, "JSON"));
    if (strstr(err.reason, want) == NULL)
        fail_msg("reason \"%s\" lacks \"%s\"", err.reason, want);
    /* The id is still readable by a scan, so the INVALID result names it;
     * the unquoted action is not. */
    assert_string_equal(err.id, "j");
    assert_string_equal(err.action, "");

    assert_invalid("", "(payload)");
    assert_invalid("not json at all", "(payload)");
    assert_invalid("{\"id\":\"j\",", "(payload)");
}

static void test_not_an_object(void **state)
{
    (void)state;
    assert_invalid("[{\"id\":\"j\",\"action\":\"imagine\",\"body\":{}}]",
                   "(payload)");
    assert_invalid("\"imagine a cat\"", "(payload)");
    assert_invalid("42", "(payload)");
    assert_invalid("null", "(payload)");
}

static void test_duplicate_keys_rejected(void **state)
{
    (void)state;
    assert_invalid_reason("{\"id\":\"a\",\"id\":\"b\",\"action\":\"imagine\","
                          "\"body\":{}}",
                          "(payload)", "duplicate");
    assert_invalid_reason("{\"id\":\"a\",\"action\":\"imagine\","
                          "\"body\":{\"prompt\":\"x\",\"prompt\":\"y\"}}",
                          "(payload)", "duplicate");
}

static void test_payload_too_large_not_parsed(void **state)
{
    /* Invalid JSON over the limit: the verdict must be "too large", which
     * shows the size check comes first and nothing was parsed. */
    size_t len = 4u << 20;
    char *big = malloc(len);
    struct job_spec spec;
    struct job_error err;
    (void)state;

    assert_non_null(big);
    memset(big, '[', len);
    assert_int_equal(job_parse(big, len, 1000, &spec, &err), -1);
    assert_string_equal(err.field, "(payload)");
    assert_non_null(strstr(err.reason, "too large"));
    assert_null(strstr(err.reason, "JSON"));
    assert_spec_empty(&spec);
    free(big);
}

static void test_payload_at_limit_accepted(void **state)
{
    const char *payload = "{\"id\":\"j\",\"action\":\"imagine\",\"body\":{}}";
    size_t len = strlen(payload);
    struct job_spec spec;
    struct job_error err;
    (void)state;

    assert_int_equal(job_parse(payload, len, (long)len, &spec, &err), 0);
    job_spec_clear(&spec);
    assert_int_equal(job_parse(payload, len, (long)len - 1, &spec, &err), -1);
    assert_string_equal(err.field, "(payload)");
    assert_non_null(strstr(err.reason, "too large"));
}

/* ---- id ---- */

static void test_id_missing(void **state)
{
    (void)state;
    assert_invalid("{\"action\":\"imagine\",\"body\":{}}", "id");
}

static void test_id_not_string(void **state)
{
    (void)state;
    assert_invalid("{\"id\":42,\"action\":\"imagine\",\"body\":{}}", "id");
    assert_invalid("{\"id\":null,\"action\":\"imagine\",\"body\":{}}", "id");
    assert_invalid("{\"id\":[\"a\"],\"action\":\"imagine\",\"body\":{}}", "id");
    assert_invalid("{\"id\":{},\"action\":\"imagine\",\"body\":{}}", "id");
}

static void test_id_empty(void **state)
{
    (void)state;
    assert_invalid("{\"id\":\"\",\"action\":\"imagine\",\"body\":{}}", "id");
}

static void test_id_length_limit(void **state)
{
    char id[JOB_ID_MAX + 2];
    char payload[512];
    struct job_spec spec;
    struct job_error err;
    (void)state;

    memset(id, 'x', JOB_ID_MAX);
    id[JOB_ID_MAX] = '\0';
    snprintf(payload, sizeof(payload),
             "{\"id\":\"%s\",\"action\":\"imagine\",\"body\":{}}", id);
    assert_int_equal(parse(payload, &spec, &err), 0);
    assert_string_equal(spec.id, id);
    job_spec_clear(&spec);

    id[JOB_ID_MAX] = 'x';
    id[JOB_ID_MAX + 1] = '\0';
    snprintf(payload, sizeof(payload),
             "{\"id\":\"%s\",\"action\":\"imagine\",\"body\":{}}", id);
    assert_invalid_err(payload, "id", &err);
    assert_string_equal(err.id, "");
    assert_string_equal(err.action, "imagine");
}

static void test_id_bad_characters(void **state)
{
    (void)state;
    assert_invalid("{\"id\":\"a b\",\"action\":\"imagine\",\"body\":{}}", "id");
    assert_invalid("{\"id\":\"a/b\",\"action\":\"imagine\",\"body\":{}}", "id");
    assert_invalid(
        "{\"id\":\"caf\xc3\xa9\",\"action\":\"imagine\",\"body\":{}}", "id");
    assert_invalid("{\"id\":\"\\u65e5\\u672c\",\"action\":\"imagine\","
                   "\"body\":{}}",
                   "id");
    assert_invalid("{\"id\":\"a\\nb\",\"action\":\"imagine\",\"body\":{}}",
                   "id");
}

/* ---- action ---- */

static void test_action_missing(void **state)
{
    (void)state;
    assert_invalid("{\"id\":\"j\",\"body\":{}}", "action");
}

static void test_action_unknown(void **state)
{
    (void)state;
    assert_invalid("{\"id\":\"j\",\"action\":\"upscale\",\"body\":{}}",
                   "action");
    assert_invalid("{\"id\":\"j\",\"action\":\"\",\"body\":{}}", "action");
    assert_invalid("{\"id\":\"j\",\"action\":\"imagine \",\"body\":{}}",
                   "action");
}

static void test_action_not_string(void **state)
{
    (void)state;
    assert_invalid("{\"id\":\"j\",\"action\":0,\"body\":{}}", "action");
    assert_invalid("{\"id\":\"j\",\"action\":null,\"body\":{}}", "action");
    assert_invalid("{\"id\":\"j\",\"action\":[\"imagine\"],\"body\":{}}",
                   "action");
}

/* ---- body ---- */

static void test_body_missing(void **state)
{
    (void)state;
    assert_invalid("{\"id\":\"j\",\"action\":\"imagine\"}", "body");
}

static void test_body_not_object(void **state)
{
    (void)state;
    assert_invalid("{\"id\":\"j\",\"action\":\"imagine\",\"body\":[]}", "body");
    assert_invalid("{\"id\":\"j\",\"action\":\"imagine\","
                   "\"body\":\"{\\\"prompt\\\":\\\"cat\\\"}\"}",
                   "body");
    assert_invalid("{\"id\":\"j\",\"action\":\"imagine\",\"body\":null}",
                   "body");
    assert_invalid("{\"id\":\"j\",\"action\":\"imagine\",\"body\":1}", "body");
}

/* ---- optional fields ---- */

static void test_mode_invalid(void **state)
{
    (void)state;
    assert_invalid("{\"id\":\"j\",\"action\":\"imagine\",\"body\":{},"
                   "\"mode\":\"slow\"}",
                   "mode");
    assert_invalid("{\"id\":\"j\",\"action\":\"imagine\",\"body\":{},"
                   "\"mode\":1}",
                   "mode");
    assert_invalid("{\"id\":\"j\",\"action\":\"imagine\",\"body\":{},"
                   "\"mode\":\"\"}",
                   "mode");
}

static void test_timeout_rejected(void **state)
{
    static const char *const bad[] = {
        "0", "-1", "-0.5", "\"30\"", "true", "{}", "31536001", "1e12",
    };
    (void)state;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char payload[256];

        snprintf(payload, sizeof(payload),
                 "{\"id\":\"j\",\"action\":\"imagine\",\"body\":{},"
                 "\"timeout_s\":%s}",
                 bad[i]);
        assert_invalid(payload, "timeout_s");
    }
}

static void test_timeout_accepted(void **state)
{
    static const struct {
        const char *text;
        long want;
    } cases[] = {
        {"0.5", 500},  {"0.001", 1},    {"1.5", 1500},
        {"30", 30000}, {"30.0", 30000}, {"31536000", 31536000000L},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char payload[256];
        struct job_spec spec;
        struct job_error err;

        snprintf(payload, sizeof(payload),
                 "{\"id\":\"j\",\"action\":\"imagine\",\"body\":{},"
                 "\"timeout_s\":%s}",
                 cases[i].text);
        if (parse(payload, &spec, &err) != 0)
            fail_msg("timeout_s %s rejected: %s", cases[i].text, err.reason);
        assert_int_equal(spec.timeout_ms, cases[i].want);
        job_spec_clear(&spec);
    }
}

/* enqueued_ms is optional and only feeds a metric: a usable number is
 * kept, anything else is ignored, never INVALID. */
static void test_enqueued_ms(void **state)
{
    static const struct {
        const char *text;
        long long want;
    } cases[] = {
        {"1795608947053", 1795608947053LL},
        {"1795608947053.9", 1795608947053LL},
        {"-5", 0},
        {"0", 0},
        {"\"1795608947053\"", 0},
        {"null", 0},
        {"true", 0},
        {"{}", 0},
        {"1e300", 0},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char payload[256];
        struct job_spec spec;
        struct job_error err;

        snprintf(payload, sizeof(payload),
                 "{\"id\":\"j\",\"action\":\"imagine\",\"body\":{},"
                 "\"enqueued_ms\":%s}",
                 cases[i].text);
        if (parse(payload, &spec, &err) != 0)
            fail_msg("enqueued_ms %s rejected: %s", cases[i].text, err.reason);
        assert_int_equal(spec.enqueued_ms, cases[i].want);
        job_spec_clear(&spec);
    }
}

static void test_reply_to_invalid(void **state)
{
    (void)state;
    assert_invalid("{\"id\":\"j\",\"action\":\"imagine\",\"body\":{},"
                   "\"reply_to\":\"my results\"}",
                   "reply_to");
    assert_invalid("{\"id\":\"j\",\"action\":\"imagine\",\"body\":{},"
                   "\"reply_to\":\"a/b\"}",
                   "reply_to");
    assert_invalid("{\"id\":\"j\",\"action\":\"imagine\",\"body\":{},"
                   "\"reply_to\":\"*\"}",
                   "reply_to");
    assert_invalid("{\"id\":\"j\",\"action\":\"imagine\",\"body\":{},"
                   "\"reply_to\":\"\"}",
                   "reply_to");
    assert_invalid("{\"id\":\"j\",\"action\":\"imagine\",\"body\":{},"
                   "\"reply_to\":7}",
                   "reply_to");
}

/* ---- salvage of id/action into the error ---- */

static void test_oversized_and_broken_salvage_id_reply_to(void **state)
{
    char big[4096];
    struct job_spec spec;
    struct job_error err;
    int n;
    (void)state;

    n = snprintf(big, sizeof(big),
                 "{\"id\":\"big-1\",\"action\":\"blend\",\"reply_to\":\"r9\","
                 "\"body\":{\"prompt\":\"%0*d\"}}",
                 3000, 0);
    assert_int_equal(job_parse(big, (size_t)n, 1024, &spec, &err), -1);
    assert_string_equal(err.field, "(payload)");
    assert_non_null(strstr(err.reason, "too large"));
    assert_string_equal(err.id, "big-1");
    assert_string_equal(err.action, "blend");
    assert_string_equal(err.reply_to, "r9");

    /* A bad reply_to is not salvaged. */
    assert_int_equal(
        job_parse("{\"id\":\"x\",\"reply_to\":\"a b\"}", 31, 0, &spec, &err),
        -1);
    assert_string_equal(err.reply_to, "");
}

static void test_big_integer_meta_verbatim(void **state)
{
    const char *payload =
        "{\"id\":\"m\",\"action\":\"imagine\",\"body\":{\"prompt\":\"x\","
        "\"n\":0.1},\"meta\":{\"n\":12345678901234567890,\"f\":0.1}}";
    struct job_spec spec;
    struct job_error err;
    char *body;
    size_t len;
    (void)state;

    assert_int_equal(job_parse(payload, strlen(payload), 0, &spec, &err), 0);
    assert_non_null(spec.meta_text);
    assert_int_equal(spec.meta_len,
                     strlen("{\"n\":12345678901234567890,\"f\":0.1}"));
    assert_memory_equal(spec.meta_text,
                        "{\"n\":12345678901234567890,\"f\":0.1}",
                        spec.meta_len);
    /* The body goes upstream byte for byte, "state" spliced in front. */
    body = job_submit_body(&spec, NULL, &len);
    assert_string_equal(body, "{\"state\":\"m\",\"prompt\":\"x\",\"n\":0.1}");
    free(body);
    body = job_submit_body(&spec, "https://hook/x", &len);
    assert_string_equal(body, "{\"state\":\"m\",\"notifyHook\":"
                              "\"https://hook/x\",\"prompt\":\"x\",\"n\":0.1}");
    free(body);
    job_spec_clear(&spec);
}

static void test_error_salvages_id_and_action(void **state)
{
    struct job_error err;
    (void)state;

    assert_invalid_err("{\"id\":\"job-7\",\"action\":\"blend\",\"body\":[]}",
                       "body", &err);
    assert_string_equal(err.id, "job-7");
    assert_string_equal(err.action, "blend");

    assert_invalid_err("{\"id\":\"job-8\",\"action\":\"describe\",\"body\":{},"
                       "\"timeout_s\":-3}",
                       "timeout_s", &err);
    assert_string_equal(err.id, "job-8");
    assert_string_equal(err.action, "describe");

    assert_invalid_err("{\"id\":\"job-9\",\"action\":\"zoom\",\"body\":{}}",
                       "action", &err);
    assert_string_equal(err.id, "job-9");
    assert_string_equal(err.action, "");

    assert_invalid_err("{\"id\":\"bad id\",\"action\":\"modal\",\"body\":{}}",
                       "id", &err);
    assert_string_equal(err.id, "");
    assert_string_equal(err.action, "modal");

    assert_invalid_err("{\"action\":\"action\"}", "id", &err);
    assert_string_equal(err.id, "");
    assert_string_equal(err.action, "action");
}

/* ---- forward compatibility and meta ---- */

static void test_unknown_fields_ignored(void **state)
{
    struct job_spec spec;
    struct job_error err;
    (void)state;

    assert_int_equal(parse("{\"version\":2,\"id\":\"j\",\"priority\":\"high\","
                           "\"action\":\"imagine\",\"body\":{\"prompt\":\"x\"},"
                           "\"future\":{\"nested\":[1,2]}}",
                           &spec, &err),
                     0);
    assert_string_equal(spec.id, "j");
    assert_body_equals(&spec, "{\"prompt\":\"x\"}");
    job_spec_clear(&spec);
}

static void test_meta_every_type_kept(void **state)
{
    static const char *const metas[] = {
        "{\"a\":{\"b\":[1,2.5,null,true]}}",
        "[1,\"two\",{\"three\":3}]",
        "\"opaque string\"",
        "12345",
        "-0.25",
        "true",
        "null",
    };
    (void)state;

    for (size_t i = 0; i < sizeof(metas) / sizeof(metas[0]); i++) {
        char payload[256];
        struct job_spec spec;
        struct job_error err;
        json_t *want = json_loads(metas[i], JSON_DECODE_ANY, NULL);

        assert_non_null(want);
        snprintf(payload, sizeof(payload),
                 "{\"id\":\"j\",\"action\":\"imagine\",\"body\":{},"
                 "\"meta\":%s}",
                 metas[i]);
        assert_int_equal(parse(payload, &spec, &err), 0);
        if (spec.meta == NULL || !json_equal(spec.meta, want))
            fail_msg("meta %s not kept", metas[i]);
        json_decref(want);
        job_spec_clear(&spec);
    }
}

/* ---- job_submit_body ---- */

static json_t *submit_body_json(const struct job_spec *spec, const char *hook)
{
    size_t len = 0;
    char *text = job_submit_body(spec, hook, &len);
    json_t *out;

    assert_non_null(text);
    assert_int_equal(len, strlen(text));
    out = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
    assert_non_null(out);
    assert_true(json_is_object(out));
    free(text);
    return out;
}

static void test_submit_body_sets_state(void **state)
{
    const char *body = "{\"prompt\":\"cat\",\"state\":\"producer-set\","
                       "\"base64Array\":[\"AAAA\",\"BBBB\"],"
                       "\"accountFilter\":{\"modes\":[\"FAST\"]},\"n\":2}";
    char payload[512];
    struct job_spec spec;
    struct job_error err;
    json_t *orig, *out, *rest;
    (void)state;

    snprintf(payload, sizeof(payload),
             "{\"id\":\"job-42\",\"action\":\"blend\",\"body\":%s}", body);
    assert_int_equal(parse(payload, &spec, &err), 0);
    orig = json_deep_copy(spec.body);

    out = submit_body_json(&spec, NULL);
    assert_string_equal(json_string_value(json_object_get(out, "state")),
                        "job-42");
    assert_null(json_object_get(out, "notifyHook"));
    /* Every other field passes through unchanged. */
    rest = json_deep_copy(out);
    json_object_del(rest, "state");
    json_object_del(orig, "state");
    assert_true(json_equal(rest, orig));
    assert_int_equal(json_object_size(out), json_object_size(orig) + 1);
    /* spec->body itself is untouched. */
    assert_string_equal(json_string_value(json_object_get(spec.body, "state")),
                        "producer-set");
    json_object_set_new(orig, "state", json_string("producer-set"));
    assert_true(json_equal(spec.body, orig));

    json_decref(rest);
    json_decref(out);
    json_decref(orig);
    job_spec_clear(&spec);
}

static void test_submit_body_notify_hook(void **state)
{
    const char *body = "{\"prompt\":\"cat\",\"botType\":\"NIJI_JOURNEY\"}";
    char payload[256];
    struct job_spec spec;
    struct job_error err;
    json_t *orig, *out, *rest;
    (void)state;

    snprintf(payload, sizeof(payload),
             "{\"id\":\"job-1\",\"action\":\"imagine\",\"body\":%s}", body);
    assert_int_equal(parse(payload, &spec, &err), 0);
    orig = json_loads(body, 0, NULL);

    out = submit_body_json(&spec, "https://hooks.example/mj?x=1");
    assert_string_equal(json_string_value(json_object_get(out, "state")),
                        "job-1");
    assert_string_equal(json_string_value(json_object_get(out, "notifyHook")),
                        "https://hooks.example/mj?x=1");
    rest = json_deep_copy(out);
    json_object_del(rest, "state");
    json_object_del(rest, "notifyHook");
    assert_true(json_equal(rest, orig));
    /* Neither key leaked into the job's own body. */
    assert_true(json_equal(spec.body, orig));
    json_decref(rest);
    json_decref(out);

    /* Called twice, the same answer: nothing accumulated in spec->body. */
    out = submit_body_json(&spec, NULL);
    assert_null(json_object_get(out, "notifyHook"));
    assert_int_equal(json_object_size(out), 3);
    json_decref(out);

    json_decref(orig);
    job_spec_clear(&spec);
}

static void test_submit_body_keeps_producer_hook_when_none(void **state)
{
    /* The body passes through unchanged: a producer's own notifyHook stays
     * when none is configured, and is replaced when one is. */
    struct job_spec spec;
    struct job_error err;
    json_t *out;
    (void)state;

    assert_int_equal(parse("{\"id\":\"h\",\"action\":\"imagine\",\"body\":"
                           "{\"prompt\":\"x\",\"notifyHook\":\"http://p/\"}}",
                           &spec, &err),
                     0);
    out = submit_body_json(&spec, NULL);
    assert_string_equal(json_string_value(json_object_get(out, "notifyHook")),
                        "http://p/");
    json_decref(out);
    out = submit_body_json(&spec, "http://configured/");
    assert_string_equal(json_string_value(json_object_get(out, "notifyHook")),
                        "http://configured/");
    json_decref(out);
    job_spec_clear(&spec);
}

/* ---- small helpers ---- */

static void test_action_name_round_trip(void **state)
{
    static const char *const names[ACTION_COUNT] = {
        "imagine", "blend", "describe", "shorten", "action", "modal",
    };
    (void)state;

    for (int i = 0; i < ACTION_COUNT; i++) {
        enum job_action a = ACTION_COUNT;

        assert_string_equal(job_action_name((enum job_action)i), names[i]);
        assert_int_equal(job_action_parse(names[i], &a), 0);
        assert_int_equal(a, i);
    }
    assert_string_equal(job_action_name(ACTION_COUNT), "");
    assert_string_equal(job_action_name((enum job_action) - 1), "");
}

static void test_action_parse_unknown(void **state)
{
    enum job_action a = ACTION_SHORTEN;
    (void)state;

    assert_int_equal(job_action_parse("", &a), -1);
    assert_int_equal(job_action_parse("upscale", &a), -1);
    assert_int_equal(job_action_parse("imagin", &a), -1);
    assert_int_equal(job_action_parse("imagines", &a), -1);
    assert_int_equal(a, ACTION_SHORTEN);
}

static void test_id_valid_edges(void **state)
{
    char buf[JOB_ID_MAX + 2];
    const char *all = "ABCXYZabcxyz0189._:-";
    (void)state;

    assert_int_equal(job_id_valid("", 0), 0);
    assert_int_equal(job_id_valid("abc", 0), 0);
    assert_int_equal(job_id_valid("a", 1), 1);
    assert_int_equal(job_id_valid(all, strlen(all)), 1);
    assert_int_equal(job_id_valid(".", 1), 1);
    assert_int_equal(job_id_valid("-", 1), 1);

    memset(buf, 'Z', sizeof(buf));
    assert_int_equal(job_id_valid(buf, JOB_ID_MAX), 1);
    assert_int_equal(job_id_valid(buf, JOB_ID_MAX + 1), 0);

    /* Only len bytes count: what follows is not looked at. */
    assert_int_equal(job_id_valid("ab cd", 2), 1);
    assert_int_equal(job_id_valid("ab cd", 3), 0);

    static const char bad[] = " /\\@#$%&*+=,;!?\"'`~^|<>()[]{}\t\n\x7f\x80\xff";
    for (size_t i = 0; i < sizeof(bad) - 1; i++) {
        char s[3] = {'a', bad[i], 'b'};

        if (job_id_valid(s, 3) != 0)
            fail_msg("id with byte 0x%02x accepted", (unsigned char)bad[i]);
        if (job_id_valid(&s[1], 1) != 0)
            fail_msg("id of byte 0x%02x accepted", (unsigned char)bad[i]);
    }
    assert_int_equal(job_id_valid("a\0b", 3), 0);
}

static void test_spec_clear_twice(void **state)
{
    struct job_spec spec;
    struct job_error err;
    (void)state;

    assert_int_equal(parse("{\"id\":\"j\",\"action\":\"imagine\",\"body\":{},"
                           "\"meta\":[1],\"reply_to\":\"r\"}",
                           &spec, &err),
                     0);
    job_spec_clear(&spec);
    assert_spec_empty(&spec);
    job_spec_clear(&spec);
    assert_spec_empty(&spec);
    job_spec_clear(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_job_each_action),
        cmocka_unit_test(test_valid_job_all_fields),
        cmocka_unit_test(test_valid_modes),
        cmocka_unit_test(test_mode_null_is_default),
        cmocka_unit_test(test_parse_respects_len),
        cmocka_unit_test(test_not_json_reports_position),
        cmocka_unit_test(test_not_an_object),
        cmocka_unit_test(test_duplicate_keys_rejected),
        cmocka_unit_test(test_payload_too_large_not_parsed),
        cmocka_unit_test(test_payload_at_limit_accepted),
        cmocka_unit_test(test_id_missing),
        cmocka_unit_test(test_id_not_string),
        cmocka_unit_test(test_id_empty),
        cmocka_unit_test(test_id_length_limit),
        cmocka_unit_test(test_id_bad_characters),
        cmocka_unit_test(test_action_missing),
        cmocka_unit_test(test_action_unknown),
        cmocka_unit_test(test_action_not_string),
        cmocka_unit_test(test_body_missing),
        cmocka_unit_test(test_body_not_object),
        cmocka_unit_test(test_mode_invalid),
        cmocka_unit_test(test_timeout_rejected),
        cmocka_unit_test(test_timeout_accepted),
        cmocka_unit_test(test_enqueued_ms),
        cmocka_unit_test(test_reply_to_invalid),
        cmocka_unit_test(test_error_salvages_id_and_action),
        cmocka_unit_test(test_oversized_and_broken_salvage_id_reply_to),
        cmocka_unit_test(test_big_integer_meta_verbatim),
        cmocka_unit_test(test_unknown_fields_ignored),
        cmocka_unit_test(test_meta_every_type_kept),
        cmocka_unit_test(test_submit_body_sets_state),
        cmocka_unit_test(test_submit_body_notify_hook),
        cmocka_unit_test(test_submit_body_keeps_producer_hook_when_none),
        cmocka_unit_test(test_action_name_round_trip),
        cmocka_unit_test(test_action_parse_unknown),
        cmocka_unit_test(test_id_valid_edges),
        cmocka_unit_test(test_spec_clear_twice),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
