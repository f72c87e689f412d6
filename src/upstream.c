#include "upstream.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "clock.h"
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

static void verdict(struct submit_result *out, enum submit_verdict v,
                    enum health_signal sig, const char *fmt, va_list ap)
{
    out->verdict = v;
    out->signal = sig;
    vsnprintf(out->reason, sizeof(out->reason), fmt, ap);
}

static void retry(struct submit_result *out, int maybe_accepted,
                  const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void limited(struct submit_result *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void reroute(struct submit_result *out, enum health_signal sig,
                    const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void permanent(struct submit_result *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Transient trouble of the account (transport, 5xx, garbled replies):
 * counts towards its circuit breaker and the job's submit attempts. */
static void retry(struct submit_result *out, int maybe_accepted,
                  const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    verdict(out, SUBMIT_RETRY, HEALTH_SIG_TRANSIENT, fmt, ap);
    va_end(ap);
    out->maybe_accepted = maybe_accepted;
}

/* A limit, a full queue, a 429: wait and try again; the account is fine
 * and the job did nothing wrong, so no attempt is counted. */
static void limited(struct submit_result *out, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    verdict(out, SUBMIT_RETRY, HEALTH_SIG_NONE, fmt, ap);
    va_end(ap);
    out->limited = 1;
}

/* The account cannot take jobs (key refused, no quota): leave rotation;
 * the job goes to another account. */
static void reroute(struct submit_result *out, enum health_signal sig,
                    const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    verdict(out, SUBMIT_REROUTE, sig, fmt, ap);
    va_end(ap);
}

/* The job itself was refused: it fails; the account answered fine. */
static void permanent(struct submit_result *out, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    verdict(out, SUBMIT_PERMANENT, HEALTH_SIG_OK, fmt, ap);
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
            limited(out, "upstream limit reached: %s", msg);
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
        out->signal = HEALTH_SIG_OK;
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
        out->signal = HEALTH_SIG_OK;
        return;
    case MJ_QUEUE_REJECTED:
        limited(out, "upstream queue full (code 23): %s", desc);
        return;
    case MJ_FAILURE:
        /* trueai answers 9 for a full queue; novicezk for any failure. */
        if (strstr(desc, "未启用") != NULL || strcasestr(desc, "disabled"))
            permanent(out, "upstream feature disabled: %s", desc);
        else if (strstr(desc, "队列已满") != NULL ||
                 strcasestr(desc, "queue full") != NULL)
            limited(out, "upstream queue full (code 9): %s", desc);
        else
            retry(out, 0, "upstream failure (code 9): %s", desc);
        return;
    case MJ_RELAY_UNKNOWN:
        retry(out, 0, "relay could not reach its upstream (code 5): %s", desc);
        return;
    case MJ_RATE_LIMITED:
        limited(out, "upstream rate limit (code 30): %s", desc);
        return;
    case MJ_BANNED: {
        const char *word = str_or(props, "bannedWord", "");

        permanent(out, "banned prompt: %s%s%s%s", desc,
                  word[0] ? " (word: " : "", word, word[0] ? ")" : "");
        return;
    }
    case MJ_NOT_FOUND:
        if (action == ACTION_ACTION || action == ACTION_MODAL)
            permanent(out, "parent task not found upstream: %s", desc);
        else
            limited(out, "no upstream account available (code 3): %s", desc);
        return;
    case MJ_VALIDATION:
        if (is_limit_text(desc))
            limited(out, "upstream limit reached: %s", desc);
        else if ((action == ACTION_ACTION || action == ACTION_MODAL) &&
                 (strstr(desc, "task_not_found") != NULL ||
                  strstr(desc, "task_status_not_success") != NULL))
            permanent(out,
                      "parent task not found upstream or not finished: "
                      "%s",
                      desc);
        else if (strstr(desc, "quota_not_enough") != NULL)
            reroute(out, HEALTH_SIG_QUOTA, "upstream account out of quota: %s",
                    desc);
        else
            permanent(out, "upstream rejected the job: %s", desc);
        return;
    default:
        permanent(out, "upstream answered code %ld: %s", code, desc);
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
        limited(out, "upstream rate limited (HTTP 429)");
        return;
    }
    if (resp->status >= 500) {
        retry(out, 1, "upstream server error (HTTP %ld)", resp->status);
        return;
    }
    if (resp->status == 401 || resp->status == 403) {
        reroute(out, HEALTH_SIG_AUTH, "upstream refused the API key (HTTP %ld)",
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
            limited(out, "upstream limit reached: %s", msg);
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

    if (task_id != NULL && member_text(json, len, "id", id, sizeof(id)) &&
        strcmp(id, task_id) != 0) {
        out->verdict = TASK_RETRY;
        out->signal = HEALTH_SIG_TRANSIENT;
        snprintf(out->reason, sizeof(out->reason),
                 "garbled task reply: asked for %s, got %s", task_id, id);
        return;
    }
    if (!member_text(json, len, "status", status, sizeof(status))) {
        out->verdict = TASK_RETRY;
        out->signal = HEALTH_SIG_TRANSIENT;
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

/*
 * What fetch and list answers share: transport errors, 429, 5xx and a
 * refused key are retried (the task is still there upstream; a refused
 * key also takes the account out of rotation). Returns 1 if resp was one
 * of them.
 */
static int classify_trouble(const struct http_response *resp,
                            struct task_result *out)
{
    if (resp->transport_error) {
        out->verdict = TASK_RETRY;
        out->signal = HEALTH_SIG_TRANSIENT;
        snprintf(out->reason, sizeof(out->reason), "upstream unreachable: %s",
                 resp->error);
        return 1;
    }
    if (resp->status == 429 || resp->status >= 500) {
        out->verdict = TASK_RETRY;
        out->signal =
            resp->status == 429 ? HEALTH_SIG_NONE : HEALTH_SIG_TRANSIENT;
        snprintf(out->reason, sizeof(out->reason), "upstream %s (HTTP %ld)",
                 resp->status == 429 ? "rate limited" : "server error",
                 resp->status);
        return 1;
    }
    if (resp->status == 401 || resp->status == 403) {
        out->verdict = TASK_RETRY;
        out->signal = HEALTH_SIG_AUTH;
        snprintf(out->reason, sizeof(out->reason),
                 "upstream refused the API key (HTTP %ld)", resp->status);
        return 1;
    }
    return 0;
}

void upstream_classify_fetch(const struct http_response *resp,
                             const char *task_id, struct task_result *out)
{
    json_error_t jerr;
    json_t *root;
    size_t i = 0;

    memset(out, 0, sizeof(*out));
    out->retry_after_ms = resp->retry_after_ms;
    if (classify_trouble(resp, out))
        return;
    while (i < resp->len && (resp->body[i] == ' ' || resp->body[i] == '\n' ||
                             resp->body[i] == '\r' || resp->body[i] == '\t'))
        i++;
    /* "Not found" has three shapes: novicezk's empty 200, trueai's 204,
     * new-api's 400 task_no_found; plus a plain 404. */
    out->signal = HEALTH_SIG_OK;
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
        if (out->verdict == TASK_RETRY)
            out->signal = HEALTH_SIG_TRANSIENT; /* a garbled reply */
        snprintf(out->reason, sizeof(out->reason),
                 resp->status >= 400 ? "upstream answered HTTP %ld: %s"
                                     : "garbled task reply (HTTP %ld): %s",
                 resp->status, body);
        return;
    }
    classify_text(resp->body, resp->len, task_id, out);
}

int upstream_classify_list(const struct http_response *resp,
                           const char *const *ids, size_t n,
                           upstream_each_fn *each, void *ctx)
{
    struct task_result r;
    unsigned char *seen;
    size_t pos = 0, off, vlen, i;

    memset(&r, 0, sizeof(r));
    r.retry_after_ms = resp->retry_after_ms;
    if (!resp->transport_error && (resp->status == 400 || resp->status == 404 ||
                                   resp->status == 405 || resp->status == 501))
        return -1; /* no such endpoint here, or it takes other requests */
    if (!classify_trouble(resp, &r) &&
        (resp->status != 200 || jsonscan_valid(resp->body, resp->len) != 0 ||
         jsonscan_element(resp->body, resp->len, &pos, &off, &vlen) < 0)) {
        char body[256];

        snippet(body, sizeof(body), resp->body, resp->len);
        r.verdict = TASK_RETRY;
        r.signal = HEALTH_SIG_TRANSIENT;
        snprintf(r.reason, sizeof(r.reason),
                 "garbled list-by-condition reply (HTTP %ld): %s", resp->status,
                 body);
    }
    if (r.verdict == TASK_RETRY) {
        for (i = 0; i < n; i++) {
            struct task_result copy = r;

            each(i, &copy, ctx);
        }
        return 0;
    }
    /* Tasks come back in any order and only if they exist: match by id. */
    seen = xcalloc(n ? n : 1, 1);
    pos = 0;
    while (jsonscan_element(resp->body, resp->len, &pos, &off, &vlen) == 0) {
        const char *elem = resp->body + off;
        char id[64];

        if (vlen == 0 || elem[0] != '{' ||
            !member_text(elem, vlen, "id", id, sizeof(id)))
            continue;
        for (i = 0; i < n; i++)
            if (!seen[i] && strcmp(ids[i], id) == 0)
                break;
        if (i == n)
            continue; /* a task we did not ask for */
        seen[i] = 1;
        memset(&r, 0, sizeof(r));
        r.retry_after_ms = -1;
        r.signal = HEALTH_SIG_OK;
        classify_text(elem, vlen, NULL, &r);
        each(i, &r, ctx);
    }
    for (i = 0; i < n; i++) {
        if (seen[i])
            continue;
        memset(&r, 0, sizeof(r));
        r.retry_after_ms = -1;
        r.verdict = TASK_NOT_FOUND;
        r.signal = HEALTH_SIG_OK;
        snprintf(r.reason, sizeof(r.reason), "task not found upstream");
        each(i, &r, ctx);
    }
    free(seen);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Accounts, calls, batches, probes.                                    */

/* A task id no server has: probes fetch it and expect "not found". */
#define PROBE_TASK_ID "1000000000000000"

struct batch;
struct list_request;

/* One upstream account at run time. */
struct account {
    struct upstream *up;
    int index;
    const struct account_config *cfg;
    struct curl_slist *post_headers; /* JSON + auth */
    struct curl_slist *get_headers;  /* auth */
    struct health health;
    struct batch *batches[MODE_COUNT]; /* created on first use */
    int batch_unsupported;             /* the server has no list endpoint */
    struct http_request *probe;        /* in flight, or NULL */
};

struct upstream {
    const struct config *cfg;
    struct event_base *base;
    struct http *http;
    struct account *accounts;
    size_t naccounts;
    struct health_params hp;
    upstream_health_fn *on_health;
    void *ctx;
    struct event *probe_timer;  /* armed for the next due probe */
    struct list_request *lists; /* in flight, for upstream_free */
    unsigned next_first;        /* candidates start here, in turn */
};

enum call_kind {
    CALL_SUBMIT,
    CALL_FETCH,
    CALL_BATCHED, /* waiting in a batch, or asked for in a list request */
};

struct upstream_call {
    struct upstream *up;
    struct account *acct;
    enum call_kind kind;
    enum job_action action;
    enum mode mode;
    char task_id[64];
    upstream_submit_fn *submit_cb;
    upstream_fetch_fn *fetch_cb;
    void *ctx;
    struct http_request *req;          /* CALL_SUBMIT, CALL_FETCH */
    struct batch *batch;               /* CALL_BATCHED, still waiting */
    struct list_request *list;         /* CALL_BATCHED, asked for */
    struct upstream_call *prev, *next; /* in batch or list */
    int delivering;                    /* its answer is being handed out */
    int cancelled;                     /* cancelled while delivering */
};

/* The polls of one account and mode that wait to be sent together. */
struct batch {
    struct account *acct;
    enum mode mode;
    struct upstream_call *head, *tail;
    size_t n;
    struct event *timer; /* batch_window_ms after the first joined */
};

/* One list-by-condition request in flight. */
struct list_request {
    struct upstream *up;
    struct batch *batch;
    struct upstream_call *head; /* the calls it asks for */
    size_t n;
    struct http_request *req;
    struct list_request *prev, *next; /* up->lists */
};

static void schedule_probe(struct upstream *up);

/* A poll's answer as a metrics outcome. */
static enum metrics_outcome fetch_outcome(const struct task_result *r)
{
    switch (r->verdict) {
    case TASK_RETRY:
        return METRICS_OUT_RETRY;
    case TASK_PERMANENT:
        return METRICS_OUT_REFUSED;
    case TASK_NOT_FOUND:
        return METRICS_OUT_NOT_FOUND;
    default:
        return METRICS_OUT_OK;
    }
}

/* Feeds one answer's signal to the account's health. */
static void report(struct account *a, enum health_signal sig,
                   const char *reason)
{
    enum health_change c =
        health_report(&a->health, &a->up->hp, sig, reason, clock_mono_ms());

    if (c == HEALTH_SAME)
        return;
    if (a->up->on_health != NULL)
        a->up->on_health(a->index, c, &a->health, a->up->ctx);
    schedule_probe(a->up);
}

static void on_probe_done(const struct http_response *resp, void *arg)
{
    struct account *a = arg;
    struct task_result r;
    enum health_change c;

    a->probe = NULL;
    upstream_classify_fetch(resp, PROBE_TASK_ID, &r);
    metrics_upstream(a->index, METRICS_EP_PROBE,
                     r.signal == HEALTH_SIG_OK ? METRICS_OUT_OK
                                               : METRICS_OUT_RETRY);
    c = health_probe_done(&a->health, &a->up->hp, r.signal, r.reason,
                          clock_mono_ms());
    log_debug("upstream %s: probe answered: %s", a->cfg->name,
              r.signal == HEALTH_SIG_OK ? "healthy" : r.reason);
    if (c != HEALTH_SAME && a->up->on_health != NULL)
        a->up->on_health(a->index, c, &a->health, a->up->ctx);
    schedule_probe(a->up);
}

/* The route of the first mode the account serves, for probes. */
static const char *any_route(const struct account *a)
{
    for (int m = 0; m < MODE_COUNT; m++)
        if (a->cfg->modes & (1u << m))
            return a->cfg->routes[m];
    return a->cfg->routes[MODE_DEFAULT];
}

/* Tests an OPEN or OUT account with a fetch that costs nothing. */
static void send_probe(struct account *a)
{
    char url[1024];

    snprintf(url, sizeof(url), "%s%s/mj/task/%s/fetch", a->cfg->base_url,
             any_route(a), PROBE_TASK_ID);
    health_probe_started(&a->health);
    a->probe = http_start(a->up->http, "GET", url, a->get_headers, NULL, 0,
                          a->cfg->timeout_ms, a->cfg->connect_timeout_ms,
                          on_probe_done, a);
    if (a->probe == NULL) {
        struct task_result r = {.signal = HEALTH_SIG_TRANSIENT};

        health_probe_done(&a->health, &a->up->hp, r.signal,
                          "could not start the probe", clock_mono_ms());
    }
}

static void on_probe_timer(evutil_socket_t fd, short what, void *arg)
{
    struct upstream *up = arg;
    int64_t now = clock_mono_ms();

    (void)fd;
    (void)what;
    for (size_t i = 0; i < up->naccounts; i++)
        if (health_probe_due(&up->accounts[i].health, now))
            send_probe(&up->accounts[i]);
    schedule_probe(up);
}

/* Arms the probe timer for the earliest due probe; none while every
 * account is healthy, so an idle worker stays asleep. */
static void schedule_probe(struct upstream *up)
{
    int64_t now = clock_mono_ms(), first = -1;
    struct timeval tv;

    for (size_t i = 0; i < up->naccounts; i++) {
        const struct health *h = &up->accounts[i].health;

        if (h->state != HEALTH_OK && !h->probing &&
            (first < 0 || h->probe_at < first))
            first = h->probe_at;
    }
    if (first < 0) {
        evtimer_del(up->probe_timer);
        return;
    }
    first = first > now ? first - now : 0;
    tv.tv_sec = (time_t)(first / 1000);
    tv.tv_usec = (suseconds_t)(first % 1000) * 1000;
    evtimer_add(up->probe_timer, &tv);
}

/* The header carrying the account's key, in the style its server wants. */
static struct curl_slist *auth_headers(struct curl_slist *list,
                                       const struct account_config *a)
{
    char auth[1024];

    if (a->key == NULL || a->key[0] == '\0')
        return list;
    if (a->auth == AUTH_SECRET)
        snprintf(auth, sizeof(auth), "mj-api-secret: %s", a->key);
    else if (a->auth == AUTH_RAW)
        snprintf(auth, sizeof(auth), "Authorization: %s", a->key);
    else
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", a->key);
    list = curl_slist_append(list, auth);
    explicit_bzero(auth, sizeof(auth));
    return list;
}

struct upstream *upstream_new(struct event_base *base, const struct config *cfg,
                              upstream_health_fn *on_health, void *ctx)
{
    struct upstream *up = xcalloc(1, sizeof(*up));

    up->cfg = cfg;
    up->base = base;
    up->on_health = on_health;
    up->ctx = ctx;
    up->hp.failures = cfg->breaker_failures;
    up->hp.open_ms = cfg->breaker_open_ms;
    up->hp.probe_ms = cfg->probe_interval_ms;
    /* Connections sit idle between polls; more than the in-flight peak
     * would only hold file descriptors. */
    up->http = http_new(base, 256);
    if (up->http == NULL) {
        free(up);
        return NULL;
    }
    up->probe_timer = evtimer_new(base, on_probe_timer, up);
    up->naccounts = cfg->naccounts;
    up->accounts = xcalloc(cfg->naccounts, sizeof(*up->accounts));
    for (size_t i = 0; i < cfg->naccounts; i++) {
        struct account *a = &up->accounts[i];

        a->up = up;
        a->index = (int)i;
        a->cfg = &cfg->accounts[i];
        health_init(&a->health);
        a->post_headers =
            curl_slist_append(NULL, "Content-Type: application/json");
        a->post_headers = curl_slist_append(a->post_headers, "Expect:");
        a->post_headers =
            curl_slist_append(a->post_headers, "Accept: application/json");
        a->get_headers = curl_slist_append(NULL, "Accept: application/json");
        a->post_headers = auth_headers(a->post_headers, a->cfg);
        a->get_headers = auth_headers(a->get_headers, a->cfg);
    }
    return up;
}

static void batch_free(struct batch *b);

void upstream_free(struct upstream *up)
{
    if (up == NULL)
        return;
    /* Requests still in flight are dropped without callbacks. */
    http_free(up->http);
    while (up->lists != NULL) {
        struct list_request *l = up->lists;

        up->lists = l->next;
        while (l->head != NULL) {
            struct upstream_call *c = l->head;

            l->head = c->next;
            free(c);
        }
        free(l);
    }
    for (size_t i = 0; i < up->naccounts; i++) {
        struct account *a = &up->accounts[i];

        for (int m = 0; m < MODE_COUNT; m++)
            batch_free(a->batches[m]);
        curl_slist_free_all(a->post_headers);
        curl_slist_free_all(a->get_headers);
    }
    event_free(up->probe_timer);
    free(up->accounts);
    free(up);
}

int upstream_find_account(const struct upstream *up, const char *name)
{
    for (size_t i = 0; i < up->naccounts; i++)
        if (strcmp(up->accounts[i].cfg->name, name) == 0)
            return (int)i;
    return -1;
}

const char *upstream_account_name(const struct upstream *up, int account)
{
    return up->accounts[account].cfg->name;
}

int upstream_serves(const struct upstream *up, int account, enum mode mode)
{
    return (up->accounts[account].cfg->modes & (1u << mode)) != 0;
}

int upstream_can_submit(const struct upstream *up, int account)
{
    return health_can_submit(&up->accounts[account].health);
}

const struct health *upstream_health(const struct upstream *up, int account)
{
    return &up->accounts[account].health;
}

long upstream_min_poll_ms(const struct upstream *up, int account)
{
    return up->accounts[account].cfg->min_poll_interval_ms;
}

size_t upstream_candidates(struct upstream *up, enum mode mode, int *out,
                           size_t max)
{
    size_t n = 0, first = up->next_first++ % up->naccounts;

    for (size_t k = 0; k < up->naccounts && n < max; k++) {
        int i = (int)((first + k) % up->naccounts);

        if (upstream_serves(up, i, mode) && upstream_can_submit(up, i))
            out[n++] = i;
    }
    return n;
}

static struct upstream_call *call_new(struct upstream *up, int account,
                                      enum call_kind kind, enum mode mode,
                                      void *ctx)
{
    struct upstream_call *c = xcalloc(1, sizeof(*c));

    c->up = up;
    c->acct = &up->accounts[account];
    c->kind = kind;
    c->mode = mode;
    c->ctx = ctx;
    return c;
}

static void on_submit_done(const struct http_response *resp, void *arg)
{
    struct upstream_call *c = arg;
    struct submit_result r;

    upstream_classify_submit(resp, c->action, &r);
    report(c->acct, r.signal, r.reason);
    metrics_upstream(c->acct->index, METRICS_EP_SUBMIT,
                     r.verdict == SUBMIT_RETRY       ? METRICS_OUT_RETRY
                     : r.verdict == SUBMIT_REROUTE   ? METRICS_OUT_REFUSED
                     : r.verdict == SUBMIT_PERMANENT ? METRICS_OUT_REFUSED
                                                     : METRICS_OUT_OK);
    c->submit_cb(&r, c->ctx);
    free(c);
}

struct upstream_call *upstream_submit(struct upstream *up, int account,
                                      enum job_action action, enum mode mode,
                                      char *body, size_t len,
                                      upstream_submit_fn *cb, void *ctx)
{
    struct upstream_call *c = call_new(up, account, CALL_SUBMIT, mode, ctx);
    const struct account_config *a = c->acct->cfg;
    char url[1024];

    snprintf(url, sizeof(url), "%s%s/mj/submit/%s", a->base_url,
             a->routes[mode], job_action_name(action));
    c->action = action;
    c->submit_cb = cb;
    c->req =
        http_start(up->http, "POST", url, c->acct->post_headers, body, len,
                   a->timeout_ms, a->connect_timeout_ms, on_submit_done, c);
    if (c->req == NULL) {
        free(c);
        return NULL;
    }
    return c;
}

static void on_fetch_done(const struct http_response *resp, void *arg)
{
    struct upstream_call *c = arg;
    struct task_result r;

    upstream_classify_fetch(resp, c->task_id, &r);
    report(c->acct, r.signal, r.reason);
    metrics_upstream(c->acct->index, METRICS_EP_FETCH, fetch_outcome(&r));
    c->fetch_cb(&r, c->ctx);
    free(c);
}

/* Starts the single fetch of call c. Returns 0, or -1. */
static int start_fetch(struct upstream_call *c)
{
    const struct account_config *a = c->acct->cfg;
    char url[1024];

    snprintf(url, sizeof(url), "%s%s/mj/task/%s/fetch", a->base_url,
             a->routes[c->mode], c->task_id);
    c->kind = CALL_FETCH;
    c->req = http_start(c->up->http, "GET", url, c->acct->get_headers, NULL, 0,
                        a->timeout_ms, a->connect_timeout_ms, on_fetch_done, c);
    return c->req != NULL ? 0 : -1;
}

/* --- batches ---------------------------------------------------------- */

static void batch_flush(struct batch *b);

static void on_batch_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    batch_flush(arg);
}

static void batch_free(struct batch *b)
{
    if (b == NULL)
        return;
    while (b->head != NULL) {
        struct upstream_call *c = b->head;

        b->head = c->next;
        free(c);
    }
    event_free(b->timer);
    free(b);
}

static struct batch *batch_of(struct account *a, enum mode mode)
{
    struct batch *b = a->batches[mode];

    if (b == NULL) {
        b = xcalloc(1, sizeof(*b));
        b->acct = a;
        b->mode = mode;
        b->timer = evtimer_new(a->up->base, on_batch_timer, b);
        a->batches[mode] = b;
    }
    return b;
}

static void unlink_call(struct upstream_call **head,
                        struct upstream_call **tail, struct upstream_call *c)
{
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        *head = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    else if (tail != NULL)
        *tail = c->prev;
    c->prev = c->next = NULL;
}

/* Hands one list answer to each call it asked for; each(i) is in order. */
struct delivery {
    struct upstream_call **calls;
    enum health_signal signal; /* of the first answer handed out */
    char reason[512];
    int first; /* nothing handed out yet */
};

static void deliver_one(size_t i, struct task_result *r, void *arg)
{
    struct delivery *d = arg;
    struct upstream_call *c = d->calls[i];

    if (d->first) {
        d->first = 0;
        d->signal = r->signal;
        snprintf(d->reason, sizeof(d->reason), "%s", r->reason);
    }

    if (!c->cancelled)
        c->fetch_cb(r, c->ctx);
    c->cancelled = 1; /* answered: nothing more for it */
}

static void on_list_done(const struct http_response *resp, void *arg)
{
    struct list_request *l = arg;
    struct upstream *up = l->up;
    struct account *a = l->batch->acct;
    struct upstream_call **calls = xcalloc(l->n ? l->n : 1, sizeof(*calls));
    const char **ids = xcalloc(l->n ? l->n : 1, sizeof(*ids));
    struct delivery d = {calls, HEALTH_SIG_OK, "", 1};
    size_t n = 0;
    int rc;

    /* Detach the calls first: a callback may cancel any of them, which
     * then only marks it (it is freed below). */
    if (l->prev != NULL)
        l->prev->next = l->next;
    else
        up->lists = l->next;
    if (l->next != NULL)
        l->next->prev = l->prev;
    for (struct upstream_call *c = l->head; c != NULL; c = c->next) {
        c->list = NULL;
        c->delivering = 1;
        calls[n] = c;
        ids[n] = c->task_id;
        n++;
    }
    rc = upstream_classify_list(resp, ids, n, deliver_one, &d);
    if (rc < 0) {
        /* No list endpoint: fetch one by one, now and from now on. */
        if (!a->batch_unsupported)
            log_warn("upstream %s: no list-by-condition endpoint (HTTP %ld): "
                     "polling task by task",
                     a->cfg->name, resp->status);
        a->batch_unsupported = 1;
        metrics_upstream(a->index, METRICS_EP_LIST, METRICS_OUT_NOT_FOUND);
        for (size_t i = 0; i < n; i++) {
            struct upstream_call *c = calls[i];

            c->delivering = 0;
            c->prev = c->next = NULL;
            if (c->cancelled) {
                free(c);
                calls[i] = NULL;
            } else if (start_fetch(c) != 0) {
                struct task_result r = {.verdict = TASK_RETRY,
                                        .retry_after_ms = -1};

                snprintf(r.reason, sizeof(r.reason),
                         "could not start the fetch request");
                c->fetch_cb(&r, c->ctx);
                free(c);
            }
        }
    } else {
        /* One health report per request, not per task: what its first
         * task heard (a garbled answer is transient trouble; every task
         * of a good one says "ok"), or, with no task left to answer, the
         * status alone. */
        if (d.first) {
            struct task_result t;

            memset(&t, 0, sizeof(t));
            d.signal = classify_trouble(resp, &t)
                           ? t.signal
                           : (resp->status == 200 ? HEALTH_SIG_OK
                                                  : HEALTH_SIG_TRANSIENT);
            snprintf(d.reason, sizeof(d.reason), "%s", t.reason);
        }
        report(a, d.signal, d.reason);
        metrics_upstream(a->index, METRICS_EP_LIST,
                         d.signal == HEALTH_SIG_OK ? METRICS_OUT_OK
                                                   : METRICS_OUT_RETRY);
        for (size_t i = 0; i < n; i++)
            free(calls[i]);
    }
    free(calls);
    free(ids);
    free(l);
}

/* Sends every waiting poll of b, batch_size ids per request. */
static void batch_flush(struct batch *b)
{
    struct account *a = b->acct;
    char url[1024];

    evtimer_del(b->timer);
    snprintf(url, sizeof(url), "%s%s/mj/task/list-by-condition",
             a->cfg->base_url, a->cfg->routes[b->mode]);
    while (b->head != NULL) {
        struct list_request *l = xcalloc(1, sizeof(*l));
        json_t *body = json_object(), *ids = json_array();
        struct upstream_call *last = NULL;
        char *text;

        l->up = a->up;
        l->batch = b;
        while (b->head != NULL && l->n < (size_t)a->cfg->batch_size) {
            struct upstream_call *c = b->head;

            unlink_call(&b->head, &b->tail, c);
            b->n--;
            c->batch = NULL;
            c->list = l;
            c->prev = last;
            if (last != NULL)
                last->next = c;
            else
                l->head = c;
            last = c;
            l->n++;
            json_array_append_new(ids, json_string(c->task_id));
        }
        json_object_set_new(body, "ids", ids);
        text = json_dumps(body, JSON_COMPACT);
        json_decref(body);
        l->next = a->up->lists;
        if (l->next != NULL)
            l->next->prev = l;
        a->up->lists = l;
        l->req = text == NULL
                     ? NULL
                     : http_start(a->up->http, "POST", url, a->post_headers,
                                  text, strlen(text), a->cfg->timeout_ms,
                                  a->cfg->connect_timeout_ms, on_list_done, l);
        if (l->req == NULL) {
            struct http_response fail = {.transport_error = 1,
                                         .error = "could not start the "
                                                  "list request",
                                         .body = "",
                                         .retry_after_ms = -1};

            on_list_done(&fail, l);
        }
    }
}

struct upstream_call *upstream_poll(struct upstream *up, int account,
                                    enum mode mode, const char *task_id,
                                    upstream_fetch_fn *cb, void *ctx)
{
    struct upstream_call *c = call_new(up, account, CALL_BATCHED, mode, ctx);
    struct account *a = c->acct;
    struct batch *b;

    snprintf(c->task_id, sizeof(c->task_id), "%s", task_id);
    c->fetch_cb = cb;
    if (!a->cfg->batch_fetch || a->batch_unsupported) {
        if (start_fetch(c) != 0) {
            free(c);
            return NULL;
        }
        return c;
    }
    b = batch_of(a, mode);
    c->batch = b;
    c->prev = b->tail;
    if (b->tail != NULL)
        b->tail->next = c;
    else
        b->head = c;
    b->tail = c;
    b->n++;
    if (b->n >= (size_t)a->cfg->batch_size) {
        /* Full: sent from the loop, not from inside the caller. */
        struct timeval now = {0, 0};

        evtimer_add(b->timer, &now);
    } else if (!evtimer_pending(b->timer, NULL)) {
        struct timeval tv = {a->cfg->batch_window_ms / 1000,
                             (a->cfg->batch_window_ms % 1000) * 1000};

        evtimer_add(b->timer, &tv);
    }
    return c;
}

void upstream_cancel(struct upstream_call *c)
{
    if (c == NULL)
        return;
    if (c->delivering) {
        c->cancelled = 1; /* freed by the delivery loop */
        return;
    }
    switch (c->kind) {
    case CALL_SUBMIT:
    case CALL_FETCH:
        http_cancel(c->req);
        break;
    case CALL_BATCHED:
        if (c->batch != NULL) {
            unlink_call(&c->batch->head, &c->batch->tail, c);
            c->batch->n--;
        } else if (c->list != NULL) {
            /* The request goes on for the others; it just skips c. */
            unlink_call(&c->list->head, NULL, c);
            c->list->n--;
        }
        break;
    }
    free(c);
}

unsigned long long upstream_requests(const struct upstream *up)
{
    return http_requests_total(up->http);
}
