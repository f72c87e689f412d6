#include "upstream.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "jsonscan.h"
#include "log.h"
#include "metrics.h"
#include "xmalloc.h"

/* MJ envelope codes (docs/upstreams.md has the full table). */
enum {
    MJ_SUCCESS = 1,
    MJ_NOT_FOUND = 3,
    MJ_VALIDATION = 4,
    MJ_RELAY_UNKNOWN = 5,
    MJ_FAILURE = 9,
    MJ_EXISTED = 21,
    MJ_IN_QUEUE = 22,
    MJ_QUEUE_REJECTED = 23,
    MJ_BANNED = 24,
    MJ_RATE_LIMITED = 30,
};

struct upstream {
    const struct config *cfg;
    struct http *http;
    struct curl_slist *post_headers; /* JSON + auth */
    struct curl_slist *get_headers;  /* auth */
};

/* Per-request context: which callback to run once the answer is in. */
struct call {
    struct upstream *up;
    enum job_action action;
    char task_id[64];
    upstream_submit_fn *submit_cb;
    upstream_fetch_fn *fetch_cb;
    void *ctx;
};

/* Texts that mean "a limit was reached, try later" in code 4 / -1. */
static const char *const limit_texts[] = {
    "并发数已达上限", "队列数已达上限", "今日绘图次数已达上限", "已达上限",
    "limit reached",  "rate limit",     "too many requests",
};

static int is_limit_text(const char *s)
{
    for (size_t i = 0; i < sizeof(limit_texts) / sizeof(limit_texts[0]); i++)
        if (strcasestr(s, limit_texts[i]) != NULL)
            return 1;
    return 0;
}

/* Copies at most ~200 printable bytes of a body for an error message. */
static void snippet(char *buf, size_t len, const char *body, size_t blen)
{
    size_t n = 0;

    for (size_t i = 0; i < blen && n + 1 < len && i < 200; i++)
        buf[n++] = (body[i] == '\n' || body[i] == '\r') ? ' ' : body[i];
    buf[n] = '\0';
}

static const char *str_or(json_t *obj, const char *key, const char *dflt)
{
    json_t *v = json_object_get(obj, key);

    return json_is_string(v) ? json_string_value(v) : dflt;
}

/* `result` is a string in most servers and a number in some relays. */
static int read_task_id(json_t *v, char *buf, size_t len)
{
    if (json_is_string(v) && json_string_length(v) > 0 &&
        json_string_length(v) < len) {
        snprintf(buf, len, "%s", json_string_value(v));
        return 0;
    }
    if (json_is_integer(v) && json_integer_value(v) > 0) {
        snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return 0;
    }
    if (json_is_real(v) && json_real_value(v) > 0 &&
        json_real_value(v) < 1e17) {
        snprintf(buf, len, "%.0f", json_real_value(v));
        return 0;
    }
    return -1;
}

/* OpenAI-style {"error":{"message":...}} or TAI {"message":...}. */
static const char *error_message(json_t *root)
{
    json_t *err = json_object_get(root, "error");

    if (json_is_object(err))
        return str_or(err, "message", "");
    if (json_is_string(err))
        return json_string_value(err);
    return str_or(root, "message", str_or(root, "description", ""));
}

static void retry(struct submit_result *out, int maybe_accepted,
                  const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void permanent(struct submit_result *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void retry(struct submit_result *out, int maybe_accepted,
                  const char *fmt, ...)
{
    va_list ap;

    out->verdict = SUBMIT_RETRY;
    out->maybe_accepted = maybe_accepted;
    va_start(ap, fmt);
    vsnprintf(out->reason, sizeof(out->reason), fmt, ap);
    va_end(ap);
}

static void permanent(struct submit_result *out, const char *fmt, ...)
{
    va_list ap;

    out->verdict = SUBMIT_PERMANENT;
    va_start(ap, fmt);
    vsnprintf(out->reason, sizeof(out->reason), fmt, ap);
    va_end(ap);
}

static void classify_envelope(json_t *root, long http, enum job_action action,
                              struct submit_result *out)
{
    json_t *code_v = json_object_get(root, "code");
    json_t *props = json_object_get(root, "properties");
    const char *desc = str_or(root, "description", "");
    long code;

    /* TAI's Result.Fail: {"success":false,"code":-1,"message":...}. */
    if (json_is_false(json_object_get(root, "success"))) {
        const char *msg = error_message(root);

        if (is_limit_text(msg))
            retry(out, 0, "upstream limit reached: %s", msg);
        else
            permanent(out, "upstream refused the job: %s", msg);
        return;
    }
    if (!json_is_integer(code_v)) {
        retry(out, 1, "garbled submit reply: no numeric \"code\" (HTTP %ld)",
              http);
        return;
    }
    code = (long)json_integer_value(code_v);
    switch (code) {
    case MJ_SUCCESS:
    case MJ_IN_QUEUE:
        if (read_task_id(json_object_get(root, "result"), out->task_id,
                         sizeof(out->task_id)) != 0) {
            retry(out, 1, "garbled submit reply: code %ld without a task id",
                  code);
            return;
        }
        out->verdict = SUBMIT_ACCEPTED;
        out->in_queue = code == MJ_IN_QUEUE;
        return;
    case MJ_EXISTED:
        if (read_task_id(json_object_get(root, "result"), out->task_id,
                         sizeof(out->task_id)) != 0) {
            retry(out, 1, "garbled submit reply: code %ld without a task id",
                  code);
            return;
        }
        /* (a) old novicezk: the same action exists already; poll it.
         * (b) PLUS/trueai: the action waits for modal input. */
        if (strcasestr(desc, "confirm") != NULL ||
            json_is_true(json_object_get(props, "remix")))
            out->verdict = SUBMIT_MODAL;
        else
            out->verdict = SUBMIT_ACCEPTED;
        return;
    case MJ_QUEUE_REJECTED:
        retry(out, 0, "upstream queue full (code 23): %s", desc);
        return;
    case MJ_FAILURE:
        if (strstr(desc, "未启用") != NULL || strcasestr(desc, "disabled"))
            permanent(out, "upstream feature disabled: %s", desc);
        else
            retry(out, 0, "upstream failure (code 9): %s", desc);
        return;
    case MJ_RELAY_UNKNOWN:
        retry(out, 0, "relay could not reach its upstream (code 5): %s", desc);
        return;
    case MJ_RATE_LIMITED:
        retry(out, 0, "upstream rate limit (code 30): %s", desc);
        return;
    case MJ_BANNED: {
        const char *word = str_or(props, "bannedWord", "");

        out->verdict = SUBMIT_PERMANENT;
        snprintf(out->reason, sizeof(out->reason), "banned prompt: %s%s%s%s",
                 desc, word[0] ? " (word: " : "", word, word[0] ? ")" : "");
        return;
    }
    case MJ_NOT_FOUND:
        if (action == ACTION_ACTION || action == ACTION_MODAL)
            permanent(out, "parent task not found upstream: %s", desc);
        else
            retry(out, 0, "no upstream account available (code 3): %s", desc);
        return;
    case MJ_VALIDATION:
        if (is_limit_text(desc))
            retry(out, 0, "upstream limit reached: %s", desc);
        else if ((action == ACTION_ACTION || action == ACTION_MODAL) &&
                 (strstr(desc, "task_not_found") != NULL ||
                  strstr(desc, "task_status_not_success") != NULL))
            permanent(out,
                      "parent task not found upstream or not finished: "
                      "%s",
                      desc);
        else if (strstr(desc, "quota_not_enough") != NULL)
            permanent(out, "upstream account out of quota: %s", desc);
        else
            permanent(out, "upstream rejected the job: %s", desc);
        return;
    default:
        out->verdict = SUBMIT_PERMANENT;
        snprintf(out->reason, sizeof(out->reason),
                 "upstream answered code %ld: %s", code, desc);
        return;
    }
}

void upstream_classify_submit(const struct http_response *resp,
                              enum job_action action, struct submit_result *out)
{
    char body[256];
    json_error_t jerr;
    json_t *root;

    memset(out, 0, sizeof(*out));
    out->retry_after_ms = resp->retry_after_ms;
    if (resp->transport_error) {
        retry(out, resp->maybe_delivered, "upstream unreachable: %s",
              resp->error);
        return;
    }
    snippet(body, sizeof(body), resp->body, resp->len);
    if (resp->status == 429) {
        retry(out, 0, "upstream rate limited (HTTP 429)");
        return;
    }
    if (resp->status >= 500) {
        retry(out, 1, "upstream server error (HTTP %ld)", resp->status);
        return;
    }
    if (resp->status == 401 || resp->status == 403) {
        permanent(out,
                  "upstream rejected the API key (HTTP %ld): check api.key",
                  resp->status);
        return;
    }
    root = json_loadb(resp->body, resp->len, 0, &jerr);
    if (!json_is_object(root)) {
        json_decref(root);
        if (resp->status == 404)
            permanent(out, "submit endpoint not found (HTTP 404): check "
                           "api.base_url and api.routes");
        else if (resp->status >= 200 && resp->status < 300)
            retry(out, 1, "garbled submit reply: not a JSON object: %s", body);
        else
            permanent(out, "upstream answered HTTP %ld: %s", resp->status,
                      body);
        return;
    }
    if (json_is_object(json_object_get(root, "error"))) {
        const char *msg = error_message(root);

        if (is_limit_text(msg))
            retry(out, 0, "upstream limit reached: %s", msg);
        else
            permanent(out, "upstream refused the request: %s", msg);
        json_decref(root);
        return;
    }
    classify_envelope(root, resp->status, action, out);
    if (resp->status >= 400 && out->verdict == SUBMIT_ACCEPTED)
        permanent(out, "upstream answered HTTP %ld with %s", resp->status,
                  body);
    json_decref(root);
}

/* Decides by status only: new-api reports progress 100% on failures. */
static void classify_status(const char *status, const char *fail,
                            struct task_result *out)
{
    snprintf(out->status, sizeof(out->status), "%s", status);
    if (strcmp(status, "SUCCESS") == 0) {
        out->verdict = TASK_SUCCESS;
    } else if (strcmp(status, "FAILURE") == 0) {
        out->verdict = TASK_FAILURE;
        snprintf(out->reason, sizeof(out->reason), "%s",
                 fail[0] ? fail : "upstream reported FAILURE with no reason");
    } else if (strcmp(status, "CANCEL") == 0) {
        out->verdict = TASK_CANCEL;
        snprintf(out->reason, sizeof(out->reason), "%s",
                 fail[0] ? fail : "cancelled upstream");
    } else if (strcmp(status, "MODAL") == 0) {
        out->verdict = TASK_MODAL;
    } else {
        /* NOT_START, SUBMITTED, IN_PROGRESS, and any status a future
         * server invents: keep polling until the deadline. */
        out->verdict = TASK_RUNNING;
    }
}

void upstream_classify_task(json_t *task, struct task_result *out)
{
    const char *status = str_or(task, "status", NULL);
    json_t *progress = json_object_get(task, "progress");
    const char *image = str_or(task, "imageUrl", "");

    if (status == NULL) {
        out->verdict = TASK_RETRY;
        snprintf(out->reason, sizeof(out->reason),
                 "garbled task: no \"status\" string");
        return;
    }
    if (json_is_string(progress))
        snprintf(out->progress, sizeof(out->progress), "%s",
                 json_string_value(progress));
    snprintf(out->image_url, sizeof(out->image_url), "%s", image);
    classify_status(status, str_or(task, "failReason", ""), out);
}

/* Copies member key of a validated object: strings decoded, numbers as
 * written; "" when absent or null. Returns 1 if present and not null. */
static int member_text(const char *json, size_t len, const char *key, char *out,
                       size_t size)
{
    size_t off, vlen;

    out[0] = '\0';
    if (jsonscan_member(json, len, key, &off, &vlen) != 0)
        return 0;
    if (json[off] == '"')
        return jsonscan_string(json + off, vlen, out, size) == 0;
    if ((json[off] >= '0' && json[off] <= '9') && vlen < size) {
        memcpy(out, json + off, vlen);
        out[vlen] = '\0';
        return 1;
    }
    return 0;
}

/*
 * The fetch fast path: the reply is one validated object, and the worker
 * needs five fields of it, so they are read from the text directly. A
 * jansson tree of a task with its buttons costs more than the rest of a
 * poll together (docs/benchmarks.md).
 */
static void classify_text(const char *json, size_t len, const char *task_id,
                          struct task_result *out)
{
    char id[64], status[64], fail[sizeof(out->reason)];

    if (member_text(json, len, "id", id, sizeof(id)) &&
        strcmp(id, task_id) != 0) {
        out->verdict = TASK_RETRY;
        snprintf(out->reason, sizeof(out->reason),
                 "garbled task reply: asked for %s, got %s", task_id, id);
        return;
    }
    if (!member_text(json, len, "status", status, sizeof(status))) {
        out->verdict = TASK_RETRY;
        snprintf(out->reason, sizeof(out->reason),
                 "garbled task: no \"status\" string");
        return;
    }
    member_text(json, len, "progress", out->progress, sizeof(out->progress));
    member_text(json, len, "failReason", fail, sizeof(fail));
    member_text(json, len, "imageUrl", out->image_url, sizeof(out->image_url));
    classify_status(status, fail, out);
    out->raw = json;
    out->raw_len = len;
}

void upstream_classify_fetch(const struct http_response *resp,
                             const char *task_id, struct task_result *out)
{
    json_error_t jerr;
    json_t *root;
    size_t i = 0;

    memset(out, 0, sizeof(*out));
    out->retry_after_ms = resp->retry_after_ms;
    if (resp->transport_error) {
        out->verdict = TASK_RETRY;
        snprintf(out->reason, sizeof(out->reason), "upstream unreachable: %s",
                 resp->error);
        return;
    }
    if (resp->status == 429 || resp->status >= 500) {
        out->verdict = TASK_RETRY;
        snprintf(out->reason, sizeof(out->reason), "upstream %s (HTTP %ld)",
                 resp->status == 429 ? "rate limited" : "server error",
                 resp->status);
        return;
    }
    if (resp->status == 401 || resp->status == 403) {
        out->verdict = TASK_PERMANENT;
        snprintf(out->reason, sizeof(out->reason),
                 "upstream rejected the API key (HTTP %ld): check api.key",
                 resp->status);
        return;
    }
    while (i < resp->len && (resp->body[i] == ' ' || resp->body[i] == '\n' ||
                             resp->body[i] == '\r' || resp->body[i] == '\t'))
        i++;
    /* "Not found" has three shapes: novicezk's empty 200, trueai's 204,
     * new-api's 400 task_no_found; plus a plain 404. */
    if (resp->status == 204 || resp->status == 404 ||
        (resp->status == 200 &&
         (i == resp->len || strncmp(resp->body + i, "null", 4) == 0))) {
        out->verdict = TASK_NOT_FOUND;
        snprintf(out->reason, sizeof(out->reason), "task not found upstream");
        return;
    }
    if (resp->status == 400) {
        root = json_loadb(resp->body, resp->len, 0, &jerr);
        if (json_is_object(root) &&
            strstr(str_or(root, "description", ""), "task_no_found") != NULL) {
            json_decref(root);
            out->verdict = TASK_NOT_FOUND;
            snprintf(out->reason, sizeof(out->reason),
                     "task not found upstream");
            return;
        }
        json_decref(root);
    }
    if (resp->status != 200 || jsonscan_valid(resp->body, resp->len) != 0 ||
        resp->body[i] != '{') {
        char body[256];

        snippet(body, sizeof(body), resp->body, resp->len);
        out->verdict = resp->status >= 400 ? TASK_PERMANENT : TASK_RETRY;
        snprintf(out->reason, sizeof(out->reason),
                 resp->status >= 400 ? "upstream answered HTTP %ld: %s"
                                     : "garbled task reply (HTTP %ld): %s",
                 resp->status, body);
        return;
    }
    classify_text(resp->body, resp->len, task_id, out);
}

struct upstream *upstream_new(struct event_base *base, const struct config *cfg)
{
    struct upstream *up = xcalloc(1, sizeof(*up));
    char auth[1024];

    up->cfg = cfg;
    /* Connections sit idle between polls; more than the in-flight peak
     * would only hold file descriptors. */
    up->http = http_new(base, 256);
    if (up->http == NULL) {
        free(up);
        return NULL;
    }
    up->post_headers =
        curl_slist_append(NULL, "Content-Type: application/json");
    up->post_headers = curl_slist_append(up->post_headers, "Expect:");
    up->post_headers =
        curl_slist_append(up->post_headers, "Accept: application/json");
    up->get_headers = curl_slist_append(NULL, "Accept: application/json");
    if (cfg->api_key != NULL && cfg->api_key[0] != '\0') {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", cfg->api_key);
        up->post_headers = curl_slist_append(up->post_headers, auth);
        up->get_headers = curl_slist_append(up->get_headers, auth);
        explicit_bzero(auth, sizeof(auth));
    }
    return up;
}

void upstream_free(struct upstream *up)
{
    if (up == NULL)
        return;
    http_free(up->http);
    curl_slist_free_all(up->post_headers);
    curl_slist_free_all(up->get_headers);
    free(up);
}

static void on_submit_done(const struct http_response *resp, void *arg)
{
    struct call *call = arg;
    struct submit_result r;

    upstream_classify_submit(resp, call->action, &r);
    metrics_upstream(0, METRICS_EP_SUBMIT,
                     r.verdict == SUBMIT_RETRY       ? METRICS_OUT_RETRY
                     : r.verdict == SUBMIT_PERMANENT ? METRICS_OUT_REFUSED
                                                     : METRICS_OUT_OK);
    call->submit_cb(&r, call->ctx);
    free(call);
}

static void on_fetch_done(const struct http_response *resp, void *arg)
{
    struct call *call = arg;
    struct task_result r;

    upstream_classify_fetch(resp, call->task_id, &r);
    metrics_upstream(0, METRICS_EP_FETCH,
                     r.verdict == TASK_RETRY       ? METRICS_OUT_RETRY
                     : r.verdict == TASK_PERMANENT ? METRICS_OUT_REFUSED
                     : r.verdict == TASK_NOT_FOUND ? METRICS_OUT_NOT_FOUND
                                                   : METRICS_OUT_OK);
    call->fetch_cb(&r, call->ctx);
    free(call);
}

struct http_request *upstream_submit(struct upstream *up,
                                     enum job_action action, enum mode mode,
                                     char *body, size_t len,
                                     upstream_submit_fn *cb, void *ctx)
{
    struct call *call = xcalloc(1, sizeof(*call));
    struct http_request *req;
    char url[1024];

    snprintf(url, sizeof(url), "%s%s/mj/submit/%s", up->cfg->api_base_url,
             up->cfg->mode_prefix[mode], job_action_name(action));
    call->up = up;
    call->action = action;
    call->submit_cb = cb;
    call->ctx = ctx;
    req = http_start(up->http, "POST", url, up->post_headers, body, len,
                     up->cfg->api_timeout_ms, up->cfg->api_connect_timeout_ms,
                     on_submit_done, call);
    if (req == NULL)
        free(call);
    return req;
}

struct http_request *upstream_fetch(struct upstream *up, enum mode mode,
                                    const char *task_id, upstream_fetch_fn *cb,
                                    void *ctx)
{
    struct call *call = xcalloc(1, sizeof(*call));
    struct http_request *req;
    char url[1024];

    snprintf(url, sizeof(url), "%s%s/mj/task/%s/fetch", up->cfg->api_base_url,
             up->cfg->mode_prefix[mode], task_id);
    call->up = up;
    snprintf(call->task_id, sizeof(call->task_id), "%s", task_id);
    call->fetch_cb = cb;
    call->ctx = ctx;
    req = http_start(up->http, "GET", url, up->get_headers, NULL, 0,
                     up->cfg->api_timeout_ms, up->cfg->api_connect_timeout_ms,
                     on_fetch_done, call);
    if (req == NULL)
        free(call);
    return req;
}

void upstream_cancel(struct http_request *req)
{
    /* The call context is owned by the request's callback argument: find
     * it before the request goes. */
    if (req == NULL)
        return;
    free(http_request_ctx(req));
    http_cancel(req);
}

unsigned long long upstream_requests(const struct upstream *up)
{
    return http_requests_total(up->http);
}
