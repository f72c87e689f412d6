/*
 * Unit tests for the answer classifiers of src/upstream.c, one test per
 * row of mj-api.md section 3.1 and per envelope of 3.2, per dialect
 * (novicezk = NZK, trueai = TAI, new-api = NAPI), and the task shapes of
 * section 4.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>

#include "http.h"
#include "job.h"
#include "upstream.h"

#define TASK_ID "1320098173412546"

static struct http_response response(long status, const char *body)
{
    struct http_response r = {
        .status = status,
        .transport_error = 0,
        .error = "",
        .body = body,
        .len = strlen(body),
        .retry_after_ms = -1,
        .maybe_delivered = 1,
    };

    return r;
}

static struct submit_result submit_as(long status, const char *body,
                                      enum job_action action)
{
    struct http_response r = response(status, body);
    struct submit_result out;

    memset(&out, 0x5a, sizeof(out)); /* no field may be left stale */
    upstream_classify_submit(&r, action, &out);
    return out;
}

static struct submit_result submit(long status, const char *body)
{
    return submit_as(status, body, ACTION_IMAGINE);
}

static const char *verdict_name(enum submit_verdict v)
{
    switch (v) {
    case SUBMIT_ACCEPTED:
        return "ACCEPTED";
    case SUBMIT_MODAL:
        return "MODAL";
    case SUBMIT_RETRY:
        return "RETRY";
    case SUBMIT_REROUTE:
        return "REROUTE";
    case SUBMIT_PERMANENT:
        return "PERMANENT";
    }
    return "?";
}

static void check_verdict(const struct submit_result *r,
                          enum submit_verdict want, const char *file, int line)
{
    if (r->verdict != want)
        fail_msg("%s:%d: verdict %s, want %s (reason \"%.400s\")", file, line,
                 verdict_name(r->verdict), verdict_name(want), r->reason);
    if ((want == SUBMIT_RETRY || want == SUBMIT_PERMANENT) &&
        r->reason[0] == '\0')
        fail_msg("%s:%d: %s without a reason", file, line, verdict_name(want));
}

#define assert_verdict(r, want) check_verdict(&(r), (want), __FILE__, __LINE__)

static void check_contains(const char *s, const char *sub, const char *file,
                           int line)
{
    if (strstr(s, sub) == NULL)
        fail_msg("%s:%d: \"%s\" lacks \"%s\"", file, line, s, sub);
}

static void check_lacks(const char *s, const char *sub, const char *file,
                        int line)
{
    if (strstr(s, sub) != NULL)
        fail_msg("%s:%d: \"%s\" contains \"%s\"", file, line, s, sub);
}

#define assert_contains(s, sub) check_contains((s), (sub), __FILE__, __LINE__)
#define assert_lacks(s, sub)    check_lacks((s), (sub), __FILE__, __LINE__)

static void assert_accepted(const struct submit_result *r, const char *id,
                            int in_queue)
{
    assert_verdict(*r, SUBMIT_ACCEPTED);
    assert_string_equal(r->task_id, id);
    assert_int_equal(r->in_queue, in_queue);
}

/* ================= submit: accepted ================= */

static void test_submit_nzk_code1_accepted(void **state)
{
    struct submit_result r = submit(
        200,
        "{\"code\":1,\"description\":\"Submit success\",\"result\":\"" TASK_ID
        "\",\"properties\":{\"discordInstanceId\":\"1118138338562560102\"}}");
    (void)state;

    assert_accepted(&r, TASK_ID, 0);
    assert_int_equal(r.retry_after_ms, -1);
}

static void test_submit_tai_code22_in_queue(void **state)
{
    struct submit_result r =
        submit(200, "{\"code\":22,\"description\":\"排队中，前面还有2个任务\","
                    "\"result\":\"" TASK_ID "\","
                    "\"properties\":{\"numberOfQueues\":2}}");
    (void)state;

    assert_accepted(&r, TASK_ID, 1);
}

static void test_submit_nzk_code22_in_queue(void **state)
{
    struct submit_result r =
        submit(200, "{\"code\":22,\"description\":\"排队中，前面还有1个任务\","
                    "\"result\":\"" TASK_ID "\",\"properties\":{}}");
    (void)state;

    assert_accepted(&r, TASK_ID, 1);
}

static void test_submit_result_as_string(void **state)
{
    struct submit_result r =
        submit(200, "{\"code\":1,\"result\":\"" TASK_ID "\"}");
    (void)state;

    assert_accepted(&r, TASK_ID, 0);
}

static void test_submit_result_as_integer(void **state)
{
    /* YutoAPI and deerapi document `result` as a JSON number. */
    struct submit_result r =
        submit(200, "{\"code\":1,\"description\":\"Submit success\","
                    "\"result\":" TASK_ID "}");
    (void)state;

    assert_accepted(&r, TASK_ID, 0);
}

static void test_submit_result_as_real(void **state)
{
    struct submit_result r;
    (void)state;

    r = submit(200, "{\"code\":1,\"result\":" TASK_ID ".0}");
    assert_accepted(&r, TASK_ID, 0);
    r = submit(200, "{\"code\":1,\"result\":1.320098173412546e15}");
    assert_accepted(&r, TASK_ID, 0);
}

static void test_submit_nzk_code21_existing_success(void **state)
{
    /* Old novicezk: a repeat upscale; result is the existing task. */
    struct submit_result r = submit_as(
        200,
        "{\"code\":21,\"description\":\"任务已存在\",\"result\":\"" TASK_ID
        "\","
        "\"properties\":{\"status\":\"SUCCESS\","
        "\"imageUrl\":\"https://cdn.example/x.png\"}}",
        ACTION_ACTION);
    (void)state;

    assert_accepted(&r, TASK_ID, 0);
}

static void test_submit_tai_code21_window_confirm_modal(void **state)
{
    struct submit_result r =
        submit_as(200,
                  "{\"code\":21,\"description\":\"Waiting for window confirm\","
                  "\"result\":\"1712205491372025\","
                  "\"properties\":{\"finalPrompt\":\"a cat\"}}",
                  ACTION_ACTION);
    (void)state;

    assert_verdict(r, SUBMIT_MODAL);
    assert_string_equal(r.task_id, "1712205491372025");
}

static void test_submit_tai_code21_remix_modal(void **state)
{
    struct submit_result r =
        submit_as(200,
                  "{\"code\":21,\"description\":\"窗口等待\","
                  "\"result\":\"1712205491372025\","
                  "\"properties\":{\"finalPrompt\":\"a cat\",\"remix\":true}}",
                  ACTION_ACTION);
    (void)state;

    assert_verdict(r, SUBMIT_MODAL);
    assert_string_equal(r.task_id, "1712205491372025");
}

/* ================= submit: codes that fail or retry ================= */

static void test_submit_nzk_code23_queue_rejected(void **state)
{
    /* The included id was already deleted: don't poll it. */
    struct submit_result r = submit(
        200, "{\"code\":23,\"description\":\"队列已满，请稍后尝试\",\"result\":"
             "\"" TASK_ID "\",\"properties\":{\"discordInstanceId\":\"1\","
             "\"numberOfQueues\":10}}");
    (void)state;

    assert_verdict(r, SUBMIT_RETRY);
    assert_int_equal(r.maybe_accepted, 0);
    assert_string_equal(r.task_id, "");
}

static void test_submit_nzk_code24_banned(void **state)
{
    struct submit_result r =
        submit(200, "{\"code\":24,\"description\":\"可能包含敏感词\","
                    "\"result\":null,\"properties\":{\"promptEn\":\"blood "
                    "bath\",\"bannedWord\":\"blood\"}}");
    (void)state;

    assert_verdict(r, SUBMIT_PERMANENT);
    assert_contains(r.reason, "可能包含敏感词");
    assert_contains(r.reason, "blood");
}

static void test_submit_code3_no_account_imagine_retry(void **state)
{
    static const enum job_action actions[] = {ACTION_IMAGINE, ACTION_BLEND,
                                              ACTION_DESCRIBE};
    (void)state;

    for (size_t i = 0; i < sizeof(actions) / sizeof(actions[0]); i++) {
        struct submit_result r = submit_as(
            200,
            "{\"code\":3,\"description\":\"无可用的账号实例\",\"result\":null}",
            actions[i]);

        assert_verdict(r, SUBMIT_RETRY);
        assert_int_equal(r.maybe_accepted, 0);
    }
}

static void test_submit_code3_missing_parent_action_permanent(void **state)
{
    struct submit_result r;
    (void)state;

    r = submit_as(200,
                  "{\"code\":3,\"description\":\"关联任务不存在或已失效\","
                  "\"result\":null}",
                  ACTION_ACTION);
    assert_verdict(r, SUBMIT_PERMANENT);
    assert_contains(r.reason, "关联任务不存在或已失效");

    r = submit_as(200,
                  "{\"code\":3,\"description\":\"目标任务不存在\","
                  "\"result\":null}",
                  ACTION_MODAL);
    assert_verdict(r, SUBMIT_PERMANENT);
    assert_contains(r.reason, "目标任务不存在");
}

static void test_submit_tai_404_code3_action_permanent(void **state)
{
    struct submit_result r =
        submit_as(404,
                  "{\"code\":3,\"description\":\"关联任务不存在或已失效\","
                  "\"result\":null,\"properties\":{}}",
                  ACTION_ACTION);
    (void)state;

    assert_verdict(r, SUBMIT_PERMANENT);
    assert_contains(r.reason, "关联任务不存在或已失效");
}

static void test_submit_code4_validation_permanent(void **state)
{
    struct submit_result r =
        submit(200, "{\"code\":4,\"description\":\"base64格式错误\","
                    "\"result\":null}");
    (void)state;

    assert_verdict(r, SUBMIT_PERMANENT);
    assert_contains(r.reason, "base64格式错误");
}

static void test_submit_tai_code4_limit_retry(void **state)
{
    struct submit_result r;
    (void)state;

    r = submit(200, "{\"code\":4,\"description\":\"并发数已达上限\","
                    "\"result\":null}");
    assert_verdict(r, SUBMIT_RETRY);
    r = submit(200, "{\"code\":4,\"description\":\"今日绘图次数已达上限\","
                    "\"result\":null}");
    assert_verdict(r, SUBMIT_RETRY);
}

static void test_submit_napi_code5_retry(void **state)
{
    struct submit_result r =
        submit(200, "{\"code\":5,\"description\":\"do_request_failed\","
                    "\"result\":null}");
    (void)state;

    assert_verdict(r, SUBMIT_RETRY);
}

static void test_submit_tai_code9_queue_full_retry(void **state)
{
    struct submit_result r = submit(
        200, "{\"code\":9,\"description\":\"提交失败，队列已满，请稍后重试\","
             "\"result\":null}");
    (void)state;

    assert_verdict(r, SUBMIT_RETRY);
}

static void test_submit_nzk_code9_system_error_retry(void **state)
{
    struct submit_result r =
        submit(200, "{\"code\":9,\"description\":\"提交失败，系统异常\","
                    "\"result\":null}");
    (void)state;

    assert_verdict(r, SUBMIT_RETRY);
}

static void test_submit_tai_code9_feature_disabled_permanent(void **state)
{
    struct submit_result r =
        submit(200, "{\"code\":9,\"description\":\"视频功能未启用\","
                    "\"result\":null}");
    (void)state;

    assert_verdict(r, SUBMIT_PERMANENT);
    assert_contains(r.reason, "视频功能未启用");
}

static void test_submit_napi_code30_retry(void **state)
{
    struct submit_result r =
        submit(200, "{\"code\":30,\"description\":\"rate limited\","
                    "\"result\":null}");
    (void)state;

    assert_verdict(r, SUBMIT_RETRY);
}

/* ================= submit: relay envelopes (3.2) ================= */

static void test_submit_tai_429_empty_retry(void **state)
{
    struct submit_result r = submit(429, "");
    (void)state;

    assert_verdict(r, SUBMIT_RETRY);
    assert_int_equal(r.maybe_accepted, 0);
}

static void test_submit_napi_429_code30_retry(void **state)
{
    struct submit_result r = submit(
        429, "{\"code\":30,\"description\":\"当前分组负载已饱和，请稍后再试\","
             "\"result\":null}");
    (void)state;

    assert_verdict(r, SUBMIT_RETRY);
    assert_int_equal(r.maybe_accepted, 0);
}

static void test_submit_500_text_retry(void **state)
{
    struct submit_result r = submit(500, "Internal Server Error");
    (void)state;

    assert_verdict(r, SUBMIT_RETRY);
}

static void test_submit_tai_500_result_fail_retry(void **state)
{
    struct submit_result r = submit(
        500,
        "{\"success\":false,\"code\":-1,\"message\":\"Object reference not "
        "set to an instance of an object.\"}");
    (void)state;

    assert_verdict(r, SUBMIT_RETRY);
}

static void test_submit_tai_200_result_fail_permanent(void **state)
{
    /* A model-binding error: permanent, and the reason must say why. */
    struct submit_result r =
        submit(200, "{\"success\":false,\"code\":-1,\"message\":\"bad enum\"}");
    (void)state;

    assert_verdict(r, SUBMIT_PERMANENT);
    assert_contains(r.reason, "bad enum");
}

static void test_submit_tai_200_result_fail_limit_retry(void **state)
{
    /* Per-user limits outside imagine come back as Result.Fail (-1). */
    struct submit_result r;
    (void)state;

    r = submit_as(
        200, "{\"success\":false,\"code\":-1,\"message\":\"并发数已达上限\"}",
        ACTION_ACTION);
    assert_verdict(r, SUBMIT_RETRY);
    r = submit_as(
        200, "{\"success\":false,\"code\":-1,\"message\":\"队列数已达上限\"}",
        ACTION_DESCRIBE);
    assert_verdict(r, SUBMIT_RETRY);
}

static void test_submit_napi_400_code4_permanent(void **state)
{
    struct submit_result r =
        submit(400, "{\"description\":\"prompt_is_required \","
                    "\"type\":\"upstream_error\",\"code\":4}");
    (void)state;

    assert_verdict(r, SUBMIT_PERMANENT);
    assert_contains(r.reason, "prompt_is_required");
}

static void test_submit_napi_400_code5_retry(void **state)
{
    struct submit_result r =
        submit(400, "{\"description\":\"do_request_failed \","
                    "\"type\":\"upstream_error\",\"code\":5}");
    (void)state;

    assert_verdict(r, SUBMIT_RETRY);
}

/* A refused key is the account's trouble, not the job's: the account
 * leaves rotation and the job goes to another account (or waits). */
static void test_submit_napi_401_bad_key_reroute(void **state)
{
    struct submit_result r;
    (void)state;

    r = submit(401, "{\"error\":{\"message\":\"无效的令牌\","
                    "\"type\":\"new_api_error\"}}");
    assert_verdict(r, SUBMIT_REROUTE);
    assert_int_equal(r.signal, HEALTH_SIG_AUTH);
    assert_contains(r.reason, "key");

    /* A relay echoing the token must not get it into the reason. */
    r = submit(401, "{\"error\":{\"message\":\"无效的令牌 sk-live-Secret123\","
                    "\"type\":\"new_api_error\"}}");
    assert_verdict(r, SUBMIT_REROUTE);
    assert_contains(r.reason, "key");
    assert_lacks(r.reason, "sk-live-Secret123");
    assert_lacks(r.reason, "Secret123");
}

static void test_submit_nzk_401_empty_reroute(void **state)
{
    struct submit_result r = submit(401, "");
    (void)state;

    assert_verdict(r, SUBMIT_REROUTE);
    assert_int_equal(r.signal, HEALTH_SIG_AUTH);
    assert_contains(r.reason, "key");
}

static void test_submit_tai_403_not_logged_in_reroute(void **state)
{
    struct submit_result r = submit(403, "未登录");
    (void)state;

    assert_verdict(r, SUBMIT_REROUTE);
    assert_int_equal(r.signal, HEALTH_SIG_AUTH);
}

static void test_submit_transport_not_delivered(void **state)
{
    struct http_response resp = response(0, "");
    struct submit_result r;
    (void)state;

    resp.transport_error = CURLE_COULDNT_CONNECT;
    resp.error = "Failed to connect to mj.example port 443";
    resp.maybe_delivered = 0;
    upstream_classify_submit(&resp, ACTION_IMAGINE, &r);
    assert_verdict(r, SUBMIT_RETRY);
    assert_int_equal(r.maybe_accepted, 0);
    assert_contains(r.reason, "Failed to connect to mj.example port 443");
}

static void test_submit_transport_maybe_delivered(void **state)
{
    struct http_response resp = response(0, "");
    struct submit_result r;
    (void)state;

    resp.transport_error = CURLE_OPERATION_TIMEDOUT;
    resp.error = "Operation timed out after 30000 milliseconds";
    resp.maybe_delivered = 1;
    upstream_classify_submit(&resp, ACTION_IMAGINE, &r);
    assert_verdict(r, SUBMIT_RETRY);
    assert_int_equal(r.maybe_accepted, 1);
    /* A failure of the account (its breaker counts it), not a limit. */
    assert_int_equal(r.limited, 0);
    assert_int_equal(r.signal, HEALTH_SIG_TRANSIENT);
}

static void test_submit_garbled_200_retry(void **state)
{
    static const char *const bodies[] = {
        "{\"code\":1,\"descri",
        "<html>502</html>",
        "",
    };
    (void)state;

    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        struct submit_result r = submit(200, bodies[i]);

        assert_verdict(r, SUBMIT_RETRY);
        assert_contains(r.reason, "garbled");
        /* A 200 may have created a task: the worker must look before it
         * submits again. */
        assert_int_equal(r.maybe_accepted, 1);
    }
}

static void test_submit_code1_without_result_retry(void **state)
{
    struct submit_result r;
    (void)state;

    r = submit(200, "{\"code\":1,\"description\":\"Submit success\"}");
    assert_verdict(r, SUBMIT_RETRY);
    assert_contains(r.reason, "garbled");
    assert_int_equal(r.maybe_accepted, 1);
    r = submit(200, "{\"code\":1,\"description\":\"Submit success\","
                    "\"result\":null}");
    assert_verdict(r, SUBMIT_RETRY);
    r = submit(200, "{\"code\":1,\"result\":\"\"}");
    assert_verdict(r, SUBMIT_RETRY);
}

static void test_submit_retry_after_propagated(void **state)
{
    struct http_response resp = response(429, "");
    struct submit_result r;
    (void)state;

    resp.retry_after_ms = 7000;
    upstream_classify_submit(&resp, ACTION_IMAGINE, &r);
    assert_verdict(r, SUBMIT_RETRY);
    assert_int_equal(r.retry_after_ms, 7000);

    resp = response(503, "Service Unavailable");
    resp.retry_after_ms = 120000;
    upstream_classify_submit(&resp, ACTION_IMAGINE, &r);
    assert_verdict(r, SUBMIT_RETRY);
    assert_int_equal(r.retry_after_ms, 120000);

    resp = response(500, "oops");
    upstream_classify_submit(&resp, ACTION_IMAGINE, &r);
    assert_int_equal(r.retry_after_ms, -1);
}

/* ================= fetch ================= */

static struct task_result fetch(long status, const char *body)
{
    struct http_response r = response(status, body);
    struct task_result out;

    memset(&out, 0x5a, sizeof(out));
    upstream_classify_fetch(&r, TASK_ID, &out);
    return out;
}

static const char *task_verdict_name(enum task_verdict v)
{
    static const char *const names[] = {
        "RUNNING", "SUCCESS",   "FAILURE", "CANCEL",
        "MODAL",   "NOT_FOUND", "RETRY",   "PERMANENT",
    };

    return (unsigned)v < sizeof(names) / sizeof(names[0]) ? names[v] : "?";
}

static void check_task_verdict(const struct task_result *r,
                               enum task_verdict want, const char *file,
                               int line)
{
    if (r->verdict != want)
        fail_msg("%s:%d: verdict %s, want %s (reason \"%.400s\")", file, line,
                 task_verdict_name(r->verdict), task_verdict_name(want),
                 r->reason);
}

#define assert_task_verdict(r, want)                                           \
    check_task_verdict(&(r), (want), __FILE__, __LINE__)

/* A task object with the given status, progress and failReason (raw JSON). */
static void task_json(char *buf, size_t len, const char *status,
                      const char *progress, const char *fail_reason)
{
    snprintf(buf, len,
             "{\"id\":\"" TASK_ID "\",\"action\":\"IMAGINE\","
             "\"status\":\"%s\",\"progress\":%s,\"failReason\":%s,"
             "\"prompt\":\"cat\",\"submitTime\":1741531578038,"
             "\"imageUrl\":\"https://cdn.example/x.png\","
             "\"properties\":{\"finalPrompt\":\"cat --v 6.1\"}}",
             status, progress, fail_reason);
}

static void test_fetch_running_statuses(void **state)
{
    static const struct {
        const char *status;
        const char *progress_json;
        const char *progress;
    } cases[] = {
        {"NOT_START", "\"0%\"", "0%"},
        {"SUBMITTED", "null", ""},
        {"IN_PROGRESS", "\"45%\"", "45%"},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char body[512];
        struct task_result r;

        task_json(body, sizeof(body), cases[i].status, cases[i].progress_json,
                  "null");
        r = fetch(200, body);
        assert_task_verdict(r, TASK_RUNNING);
        assert_string_equal(r.status, cases[i].status);
        assert_string_equal(r.progress, cases[i].progress);
        assert_non_null(r.raw);
    }
}

static void test_fetch_in_progress_at_100_still_running(void **state)
{
    char body[512];
    struct task_result r;
    (void)state;

    task_json(body, sizeof(body), "IN_PROGRESS", "\"100%\"", "\"\"");
    r = fetch(200, body);
    assert_task_verdict(r, TASK_RUNNING);
}

static void test_fetch_success(void **state)
{
    char body[512];
    struct task_result r;
    (void)state;

    task_json(body, sizeof(body), "SUCCESS", "\"100%\"", "\"\"");
    r = fetch(200, body);
    assert_task_verdict(r, TASK_SUCCESS);
    assert_string_equal(r.status, "SUCCESS");
    assert_string_equal(r.progress, "100%");
    assert_string_equal(r.image_url, "https://cdn.example/x.png");
    /* The reply's own text is handed on, not a re-serialised tree. */
    assert_non_null(r.raw);
    assert_ptr_equal(r.raw, body);
    assert_int_equal(r.raw_len, strlen(body));
}

static void test_fetch_success_empty_progress(void **state)
{
    char body[512];
    struct task_result r;
    (void)state;

    task_json(body, sizeof(body), "SUCCESS", "\"\"", "null");
    r = fetch(200, body);
    assert_task_verdict(r, TASK_SUCCESS);
    assert_string_equal(r.progress, "");
}

static void test_fetch_failure_reason(void **state)
{
    char body[512];
    struct task_result r;
    (void)state;

    task_json(body, sizeof(body), "FAILURE", "\"\"",
              "\"[Invalid parameter] Unrecognized parameter(s): `--xx`\"");
    r = fetch(200, body);
    assert_task_verdict(r, TASK_FAILURE);
    assert_string_equal(r.status, "FAILURE");
    assert_string_equal(
        r.reason, "[Invalid parameter] Unrecognized parameter(s): `--xx`");
    assert_non_null(r.raw);
}

static void test_fetch_failure_empty_reason_gets_default(void **state)
{
    static const char *const reasons[] = {"\"\"", "null"};
    (void)state;

    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++) {
        char body[512];
        struct task_result r;

        task_json(body, sizeof(body), "FAILURE", "\"\"", reasons[i]);
        r = fetch(200, body);
        assert_task_verdict(r, TASK_FAILURE);
        assert_true(strlen(r.reason) > 0);
    }
}

static void test_fetch_napi_failure_at_100_is_failure(void **state)
{
    /* new-api sets progress "100%" on FAILURE: decide by status only. */
    char body[512];
    struct task_result r;
    (void)state;

    task_json(body, sizeof(body), "FAILURE", "\"100%\"", "\"可能包含敏感词\"");
    r = fetch(200, body);
    assert_task_verdict(r, TASK_FAILURE);
    assert_string_equal(r.progress, "100%");
    assert_string_equal(r.reason, "可能包含敏感词");
}

static void test_fetch_cancel(void **state)
{
    char body[512];
    struct task_result r;
    (void)state;

    task_json(body, sizeof(body), "CANCEL", "\"0%\"", "null");
    r = fetch(200, body);
    assert_task_verdict(r, TASK_CANCEL);
    assert_string_equal(r.status, "CANCEL");
}

static void test_fetch_modal(void **state)
{
    char body[512];
    struct task_result r;
    (void)state;

    task_json(body, sizeof(body), "MODAL", "\"0%\"", "null");
    r = fetch(200, body);
    assert_task_verdict(r, TASK_MODAL);
    assert_string_equal(r.status, "MODAL");
}

static void test_fetch_unknown_status_running(void **state)
{
    char body[512];
    struct task_result r;
    (void)state;

    task_json(body, sizeof(body), "PAUSED", "\"10%\"", "null");
    r = fetch(200, body);
    assert_task_verdict(r, TASK_RUNNING);
    assert_string_equal(r.status, "PAUSED");
}

static void test_fetch_no_status_retry(void **state)
{
    struct task_result r = fetch(200, "{\"id\":\"" TASK_ID "\"}");
    (void)state;

    assert_task_verdict(r, TASK_RETRY);
}

static void check_not_found(long status, const char *body, const char *file,
                            int line)
{
    struct task_result r = fetch(status, body);

    if (r.verdict != TASK_NOT_FOUND)
        fail_msg("%s:%d: HTTP %ld \"%s\": verdict %s, want NOT_FOUND", file,
                 line, status, body, task_verdict_name(r.verdict));
    if (r.raw != NULL)
        fail_msg("%s:%d: task text set on NOT_FOUND", file, line);
}

#define assert_not_found(status, body)                                         \
    check_not_found((status), (body), __FILE__, __LINE__)

static void test_fetch_nzk_empty_200_not_found(void **state)
{
    (void)state;
    assert_not_found(200, "");
    assert_not_found(200, "\r\n");
}

static void test_fetch_nzk_null_200_not_found(void **state)
{
    (void)state;
    assert_not_found(200, "null");
    assert_not_found(200, " null\n");
}

static void test_fetch_tai_204_not_found(void **state)
{
    (void)state;
    assert_not_found(204, "");
}

static void test_fetch_napi_400_task_no_found(void **state)
{
    (void)state;
    assert_not_found(400, "{\"description\":\"task_no_found \","
                          "\"type\":\"upstream_error\",\"code\":4}");
}

static void test_fetch_404_not_found(void **state)
{
    (void)state;
    assert_not_found(404, "404 page not found");
    assert_not_found(404, "");
}

static void test_fetch_transient_retry(void **state)
{
    static const long statuses[] = {429, 500, 502, 503, 504};
    (void)state;

    for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
        struct task_result r = fetch(statuses[i], "<html>busy</html>");

        assert_task_verdict(r, TASK_RETRY);
    }
}

static void test_fetch_retry_after_propagated(void **state)
{
    struct http_response resp = response(429, "");
    struct task_result r;
    (void)state;

    resp.retry_after_ms = 3000;
    upstream_classify_fetch(&resp, TASK_ID, &r);
    assert_task_verdict(r, TASK_RETRY);
    assert_int_equal(r.retry_after_ms, 3000);
}

static void test_fetch_transport_retry(void **state)
{
    struct http_response resp = response(0, "");
    struct task_result r;
    (void)state;

    resp.transport_error = CURLE_OPERATION_TIMEDOUT;
    resp.error = "Operation timed out";
    upstream_classify_fetch(&resp, TASK_ID, &r);
    assert_task_verdict(r, TASK_RETRY);
    assert_contains(r.reason, "Operation timed out");

    resp.transport_error = CURLE_COULDNT_RESOLVE_HOST;
    resp.error = "Could not resolve host";
    resp.maybe_delivered = 0;
    upstream_classify_fetch(&resp, TASK_ID, &r);
    assert_task_verdict(r, TASK_RETRY);
}

/* A refused key on a poll: the task is still there upstream, so the
 * poll is retried (the account leaves rotation meanwhile). */
static void test_fetch_auth_retry(void **state)
{
    struct task_result r;
    (void)state;

    r = fetch(401, "{\"error\":{\"message\":\"无效的令牌\","
                   "\"type\":\"new_api_error\"}}");
    assert_task_verdict(r, TASK_RETRY);
    assert_int_equal(r.signal, HEALTH_SIG_AUTH);
    assert_contains(r.reason, "key");
    r = fetch(403, "未登录");
    assert_task_verdict(r, TASK_RETRY);
    assert_int_equal(r.signal, HEALTH_SIG_AUTH);
}

static void test_fetch_not_json_retry(void **state)
{
    static const char *const bodies[] = {
        "<html>502 Bad Gateway</html>",
        "{\"id\":\"" TASK_ID "\",\"status\":\"SUCC",
        "[]",
        "\"SUCCESS\"",
    };
    (void)state;

    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        struct task_result r = fetch(200, bodies[i]);

        assert_task_verdict(r, TASK_RETRY);
    }
}

static void test_fetch_other_task_id_retry(void **state)
{
    struct task_result r =
        fetch(200, "{\"id\":\"1111111111111111\",\"status\":\"SUCCESS\","
                   "\"progress\":\"100%\"}");
    (void)state;

    assert_task_verdict(r, TASK_RETRY);
}

static void test_fetch_numeric_task_id_matches(void **state)
{
    struct task_result r =
        fetch(200, "{\"id\":" TASK_ID ",\"status\":\"SUCCESS\","
                   "\"progress\":\"100%\"}");
    (void)state;

    assert_task_verdict(r, TASK_SUCCESS);
    assert_non_null(r.raw);
}

static void test_fetch_escaped_fields_decoded(void **state)
{
    struct task_result r =
        fetch(200, "{\"id\":\"" TASK_ID "\",\"status\":\"FAILURE\","
                   "\"progress\":\"0%\",\"failReason\":\"\\u53ef\\u80fd "
                   "\\\"banned\\\"\\n\\ud83d\\ude00\"}");
    (void)state;

    assert_task_verdict(r, TASK_FAILURE);
    assert_string_equal(r.reason, "可能 \"banned\"\n😀");
}

static void test_fetch_invalid_json_inside_retry(void **state)
{
    /* Structurally plausible but invalid: bad literal, bad escape,
     * trailing garbage. */
    static const char *const bodies[] = {
        "{\"id\":\"" TASK_ID "\",\"status\":\"SUCCESS\",\"x\":tru}",
        "{\"id\":\"" TASK_ID "\",\"status\":\"SUC\\qCESS\"}",
        "{\"id\":\"" TASK_ID "\",\"status\":\"SUCCESS\"} x",
        "{\"id\":\"" TASK_ID "\",\"status\":\"SUCCESS\",}",
    };
    (void)state;

    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        struct task_result r = fetch(200, bodies[i]);

        assert_task_verdict(r, TASK_RETRY);
        assert_null(r.raw);
    }
}

/* ================= classify_task (borrowed task) ================= */

static void test_classify_task_borrows(void **state)
{
    json_t *task =
        json_pack("{s:s, s:s, s:s, s:s}", "id", TASK_ID, "status", "FAILURE",
                  "progress", "100%", "failReason", "Banned prompt detected");
    struct task_result r;
    (void)state;

    assert_non_null(task);
    memset(&r, 0, sizeof(r));
    upstream_classify_task(task, &r);
    assert_task_verdict(r, TASK_FAILURE);
    assert_string_equal(r.status, "FAILURE");
    assert_string_equal(r.progress, "100%");
    assert_string_equal(r.reason, "Banned prompt detected");
    assert_int_equal(task->refcount, 1);
    json_decref(task);
}

static void test_classify_task_each_status(void **state)
{
    static const struct {
        const char *status;
        enum task_verdict want;
    } cases[] = {
        {"NOT_START", TASK_RUNNING},   {"SUBMITTED", TASK_RUNNING},
        {"IN_PROGRESS", TASK_RUNNING}, {"SUCCESS", TASK_SUCCESS},
        {"FAILURE", TASK_FAILURE},     {"CANCEL", TASK_CANCEL},
        {"MODAL", TASK_MODAL},         {"SOMETHING_NEW", TASK_RUNNING},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *task = json_pack("{s:s}", "status", cases[i].status);
        struct task_result r;

        memset(&r, 0, sizeof(r));
        upstream_classify_task(task, &r);
        if (r.verdict != cases[i].want)
            fail_msg("status %s: verdict %s, want %s", cases[i].status,
                     task_verdict_name(r.verdict),
                     task_verdict_name(cases[i].want));
        assert_string_equal(r.status, cases[i].status);
        json_decref(task);
    }
}

/* ================= what each answer says about the account ============= */

/*
 * Every row of mj-api.md section 3.1 and envelope of 3.2, with the three
 * things the worker acts on: the verdict for the job, whether a retry is
 * a mere limit (not counted against the job), and the signal to the
 * account's health (breaker, rotation).
 */
static void test_submit_rows_account_signal(void **state)
{
    static const struct {
        long status;
        const char *body;
        enum job_action action;
        enum submit_verdict verdict;
        int limited;
        enum health_signal signal;
    } rows[] = {
        {200, "{\"code\":1,\"result\":\"" TASK_ID "\"}", ACTION_IMAGINE,
         SUBMIT_ACCEPTED, 0, HEALTH_SIG_OK},
        {200, "{\"code\":22,\"result\":\"" TASK_ID "\"}", ACTION_IMAGINE,
         SUBMIT_ACCEPTED, 0, HEALTH_SIG_OK},
        {200,
         "{\"code\":21,\"description\":\"Waiting for window confirm\","
         "\"result\":\"" TASK_ID "\"}",
         ACTION_ACTION, SUBMIT_MODAL, 0, HEALTH_SIG_OK},
        {200, "{\"code\":23,\"description\":\"队列已满，请稍后尝试\"}",
         ACTION_IMAGINE, SUBMIT_RETRY, 1, HEALTH_SIG_NONE},
        {200, "{\"code\":24,\"description\":\"可能包含敏感词\"}",
         ACTION_IMAGINE, SUBMIT_PERMANENT, 0, HEALTH_SIG_OK},
        {200, "{\"code\":3,\"description\":\"无可用的账号实例\"}",
         ACTION_IMAGINE, SUBMIT_RETRY, 1, HEALTH_SIG_NONE},
        {404, "{\"code\":3,\"description\":\"关联任务不存在或已失效\"}",
         ACTION_ACTION, SUBMIT_PERMANENT, 0, HEALTH_SIG_OK},
        {200, "{\"code\":4,\"description\":\"prompt不能为空\"}", ACTION_IMAGINE,
         SUBMIT_PERMANENT, 0, HEALTH_SIG_OK},
        {200, "{\"code\":4,\"description\":\"并发数已达上限\"}", ACTION_IMAGINE,
         SUBMIT_RETRY, 1, HEALTH_SIG_NONE},
        {400,
         "{\"description\":\"quota_not_enough \",\"type\":"
         "\"upstream_error\",\"code\":4}",
         ACTION_IMAGINE, SUBMIT_REROUTE, 0, HEALTH_SIG_QUOTA},
        {200, "{\"code\":4,\"description\":\"quota_not_enough\"}",
         ACTION_IMAGINE, SUBMIT_REROUTE, 0, HEALTH_SIG_QUOTA},
        {200, "{\"code\":5,\"description\":\"do_request_failed\"}",
         ACTION_IMAGINE, SUBMIT_RETRY, 0, HEALTH_SIG_TRANSIENT},
        {200, "{\"code\":9,\"description\":\"提交失败，队列已满，请稍后重试\"}",
         ACTION_IMAGINE, SUBMIT_RETRY, 1, HEALTH_SIG_NONE},
        {200, "{\"code\":9,\"description\":\"提交失败，系统异常\"}",
         ACTION_IMAGINE, SUBMIT_RETRY, 0, HEALTH_SIG_TRANSIENT},
        {200, "{\"code\":9,\"description\":\"视频功能未启用\"}", ACTION_IMAGINE,
         SUBMIT_PERMANENT, 0, HEALTH_SIG_OK},
        {429, "{\"code\":30,\"description\":\"当前分组负载已饱和\"}",
         ACTION_IMAGINE, SUBMIT_RETRY, 1, HEALTH_SIG_NONE},
        {200, "{\"code\":30,\"description\":\"rate limited\"}", ACTION_IMAGINE,
         SUBMIT_RETRY, 1, HEALTH_SIG_NONE},
        {200, "{\"success\":false,\"code\":-1,\"message\":\"bad enum\"}",
         ACTION_IMAGINE, SUBMIT_PERMANENT, 0, HEALTH_SIG_OK},
        {200, "{\"success\":false,\"code\":-1,\"message\":\"队列数已达上限\"}",
         ACTION_ACTION, SUBMIT_RETRY, 1, HEALTH_SIG_NONE},
        {500, "{\"success\":false,\"code\":-1,\"message\":\"boom\"}",
         ACTION_IMAGINE, SUBMIT_RETRY, 0, HEALTH_SIG_TRANSIENT},
        {503, "{\"error\":{\"message\":\"no channel\"}}", ACTION_IMAGINE,
         SUBMIT_RETRY, 0, HEALTH_SIG_TRANSIENT},
        {401, "", ACTION_IMAGINE, SUBMIT_REROUTE, 0, HEALTH_SIG_AUTH},
        {403, "未登录", ACTION_IMAGINE, SUBMIT_REROUTE, 0, HEALTH_SIG_AUTH},
        {429, "", ACTION_IMAGINE, SUBMIT_RETRY, 1, HEALTH_SIG_NONE},
        {200, "<html>oops</html>", ACTION_IMAGINE, SUBMIT_RETRY, 0,
         HEALTH_SIG_TRANSIENT},
        {200, "{\"code\":1}", ACTION_IMAGINE, SUBMIT_RETRY, 0,
         HEALTH_SIG_TRANSIENT},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct submit_result r =
            submit_as(rows[i].status, rows[i].body, rows[i].action);

        if (r.verdict != rows[i].verdict || r.limited != rows[i].limited ||
            r.signal != rows[i].signal)
            fail_msg("row %zu (HTTP %ld %s): verdict %s limited %d signal %d, "
                     "want %s %d %d (reason \"%s\")",
                     i, rows[i].status, rows[i].body, verdict_name(r.verdict),
                     r.limited, r.signal, verdict_name(rows[i].verdict),
                     rows[i].limited, rows[i].signal, r.reason);
    }
}

static void test_fetch_signals(void **state)
{
    char task[512];
    struct task_result r;
    (void)state;

    task_json(task, sizeof(task), "IN_PROGRESS", "\"45%\"", "null");
    r = fetch(200, task);
    assert_int_equal(r.signal, HEALTH_SIG_OK);
    r = fetch(204, "");
    assert_int_equal(r.signal, HEALTH_SIG_OK); /* not found: it answered */
    r = fetch(502, "Bad Gateway");
    assert_int_equal(r.signal, HEALTH_SIG_TRANSIENT);
    r = fetch(429, "");
    assert_int_equal(r.signal, HEALTH_SIG_NONE);
    r = fetch(200, "{\"id\":");
    assert_task_verdict(r, TASK_RETRY);
    assert_int_equal(r.signal, HEALTH_SIG_TRANSIENT);
}

/* ================= list-by-condition ================= */

struct seen {
    struct task_result r[8];
    int calls[8];
    char raw[8][256];
};

static void collect(size_t i, struct task_result *r, void *ctx)
{
    struct seen *s = ctx;

    s->calls[i]++;
    s->r[i] = *r;
    if (r->raw != NULL)
        snprintf(s->raw[i], sizeof(s->raw[i]), "%.*s", (int)r->raw_len, r->raw);
}

static int list(long status, const char *body, struct seen *s)
{
    static const char *const ids[] = {"1001", "1002", "1003"};
    struct http_response resp = response(status, body);

    memset(s, 0, sizeof(*s));
    return upstream_classify_list(&resp, ids, 3, collect, s);
}

static void test_list_matches_by_id(void **state)
{
    struct seen s;
    (void)state;

    /* Out of order, one missing, one we never asked for, one not an
     * object: every id gets exactly one answer. */
    assert_int_equal(
        list(200,
             "[{\"id\":\"1003\",\"status\":\"SUCCESS\",\"imageUrl\":\"u3\"},"
             " 7, {\"id\":\"9999\",\"status\":\"SUCCESS\"},"
             " {\"id\":\"1001\",\"status\":\"IN_PROGRESS\","
             "\"progress\":\"50%\"}]",
             &s),
        0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(s.calls[i], 1);
    assert_task_verdict(s.r[0], TASK_RUNNING);
    assert_string_equal(s.r[0].progress, "50%");
    assert_string_equal(s.raw[0], "{\"id\":\"1001\",\"status\":\"IN_PROGRESS\","
                                  "\"progress\":\"50%\"}");
    assert_task_verdict(s.r[1], TASK_NOT_FOUND);
    assert_int_equal(s.r[1].signal, HEALTH_SIG_OK);
    assert_task_verdict(s.r[2], TASK_SUCCESS);
    assert_string_equal(s.r[2].image_url, "u3");
    /* An empty answer: nothing visible (yet). */
    assert_int_equal(list(200, "[]", &s), 0);
    for (int i = 0; i < 3; i++)
        assert_task_verdict(s.r[i], TASK_NOT_FOUND);
}

static void test_list_failures(void **state)
{
    struct seen s;
    (void)state;

    /* No such endpoint: the caller falls back to per-task fetches. */
    assert_int_equal(list(404, "Not Found", &s), -1);
    assert_int_equal(s.calls[0], 0);
    assert_int_equal(list(405, "", &s), -1);
    assert_int_equal(list(400, "{\"code\":4,\"description\":\"bad\"}", &s), -1);
    assert_int_equal(list(501, "", &s), -1);
    /* Anything else: every id is retried, with one shared reason. */
    assert_int_equal(list(500, "boom", &s), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(s.calls[i], 1);
        assert_task_verdict(s.r[i], TASK_RETRY);
        assert_int_equal(s.r[i].signal, HEALTH_SIG_TRANSIENT);
    }
    assert_int_equal(list(200, "[{\"id\":\"1001\",", &s), 0);
    assert_task_verdict(s.r[0], TASK_RETRY);
    assert_contains(s.r[0].reason, "garbled list-by-condition reply");
    assert_int_equal(list(200, "{\"code\":1}", &s), 0);
    assert_task_verdict(s.r[2], TASK_RETRY);
    assert_int_equal(list(401, "", &s), 0);
    assert_task_verdict(s.r[1], TASK_RETRY);
    assert_int_equal(s.r[1].signal, HEALTH_SIG_AUTH);
    assert_int_equal(list(429, "", &s), 0);
    assert_int_equal(s.r[1].signal, HEALTH_SIG_NONE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_submit_rows_account_signal),
        cmocka_unit_test(test_fetch_signals),
        cmocka_unit_test(test_list_matches_by_id),
        cmocka_unit_test(test_list_failures),
        cmocka_unit_test(test_submit_nzk_code1_accepted),
        cmocka_unit_test(test_submit_tai_code22_in_queue),
        cmocka_unit_test(test_submit_nzk_code22_in_queue),
        cmocka_unit_test(test_submit_result_as_string),
        cmocka_unit_test(test_submit_result_as_integer),
        cmocka_unit_test(test_submit_result_as_real),
        cmocka_unit_test(test_submit_nzk_code21_existing_success),
        cmocka_unit_test(test_submit_tai_code21_window_confirm_modal),
        cmocka_unit_test(test_submit_tai_code21_remix_modal),
        cmocka_unit_test(test_submit_nzk_code23_queue_rejected),
        cmocka_unit_test(test_submit_nzk_code24_banned),
        cmocka_unit_test(test_submit_code3_no_account_imagine_retry),
        cmocka_unit_test(test_submit_code3_missing_parent_action_permanent),
        cmocka_unit_test(test_submit_tai_404_code3_action_permanent),
        cmocka_unit_test(test_submit_code4_validation_permanent),
        cmocka_unit_test(test_submit_tai_code4_limit_retry),
        cmocka_unit_test(test_submit_napi_code5_retry),
        cmocka_unit_test(test_submit_tai_code9_queue_full_retry),
        cmocka_unit_test(test_submit_nzk_code9_system_error_retry),
        cmocka_unit_test(test_submit_tai_code9_feature_disabled_permanent),
        cmocka_unit_test(test_submit_napi_code30_retry),
        cmocka_unit_test(test_submit_tai_429_empty_retry),
        cmocka_unit_test(test_submit_napi_429_code30_retry),
        cmocka_unit_test(test_submit_500_text_retry),
        cmocka_unit_test(test_submit_tai_500_result_fail_retry),
        cmocka_unit_test(test_submit_tai_200_result_fail_permanent),
        cmocka_unit_test(test_submit_tai_200_result_fail_limit_retry),
        cmocka_unit_test(test_submit_napi_400_code4_permanent),
        cmocka_unit_test(test_submit_napi_400_code5_retry),
        cmocka_unit_test(test_submit_napi_401_bad_key_reroute),
        cmocka_unit_test(test_submit_nzk_401_empty_reroute),
        cmocka_unit_test(test_submit_tai_403_not_logged_in_reroute),
        cmocka_unit_test(test_submit_transport_not_delivered),
        cmocka_unit_test(test_submit_transport_maybe_delivered),
        cmocka_unit_test(test_submit_garbled_200_retry),
        cmocka_unit_test(test_submit_code1_without_result_retry),
        cmocka_unit_test(test_submit_retry_after_propagated),
        cmocka_unit_test(test_fetch_running_statuses),
        cmocka_unit_test(test_fetch_in_progress_at_100_still_running),
        cmocka_unit_test(test_fetch_success),
        cmocka_unit_test(test_fetch_success_empty_progress),
        cmocka_unit_test(test_fetch_failure_reason),
        cmocka_unit_test(test_fetch_failure_empty_reason_gets_default),
        cmocka_unit_test(test_fetch_napi_failure_at_100_is_failure),
        cmocka_unit_test(test_fetch_cancel),
        cmocka_unit_test(test_fetch_modal),
        cmocka_unit_test(test_fetch_unknown_status_running),
        cmocka_unit_test(test_fetch_no_status_retry),
        cmocka_unit_test(test_fetch_nzk_empty_200_not_found),
        cmocka_unit_test(test_fetch_nzk_null_200_not_found),
        cmocka_unit_test(test_fetch_tai_204_not_found),
        cmocka_unit_test(test_fetch_napi_400_task_no_found),
        cmocka_unit_test(test_fetch_404_not_found),
        cmocka_unit_test(test_fetch_transient_retry),
        cmocka_unit_test(test_fetch_retry_after_propagated),
        cmocka_unit_test(test_fetch_transport_retry),
        cmocka_unit_test(test_fetch_auth_retry),
        cmocka_unit_test(test_fetch_not_json_retry),
        cmocka_unit_test(test_fetch_other_task_id_retry),
        cmocka_unit_test(test_fetch_numeric_task_id_matches),
        cmocka_unit_test(test_fetch_escaped_fields_decoded),
        cmocka_unit_test(test_fetch_invalid_json_inside_retry),
        cmocka_unit_test(test_classify_task_borrows),
        cmocka_unit_test(test_classify_task_each_status),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
