#include "sim_reply.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim_content.h"

#define CT_JSON "application/json"
#define CT_TEXT "text/plain; charset=utf-8"
#define CT_HTML "text/html; charset=utf-8"

/* Discord ids in trueai properties (any stable 19-digit strings). */
#define DISCORD_INSTANCE "1300000000000000001"

static void put_time(struct sim_json *w, enum sim_dialect d, int64_t ms)
{
    if (ms != 0)
        sim_json_int(w, ms);
    else if (d == SIM_DIALECT_NEWAPI)
        sim_json_int(w, 0); /* new-api: 0 instead of null */
    else
        sim_json_null(w);
}

/* null, or "" for new-api, whose DTO fields are plain Go strings. */
static void put_none(struct sim_json *w, enum sim_dialect d)
{
    if (d == SIM_DIALECT_NEWAPI)
        sim_json_str(w, "");
    else
        sim_json_null(w);
}

static void put_progress(struct sim_json *w, enum sim_dialect d,
                         const struct sim_snap *s)
{
    char pct[8];
    int p = s->progress;
    size_t n = 0;

    if (s->status == SIM_STATUS_FAILURE || s->status == SIM_STATUS_CANCEL) {
        if (d == SIM_DIALECT_NEWAPI) {
            sim_json_str(w, "100%"); /* new-api marks failures 100% */
            return;
        }
        if (d == SIM_DIALECT_NOVICEZK) {
            sim_json_str(w, ""); /* NZK Task.fail() clears it */
            return;
        }
    }
    if (p < 0 || p > 100)
        p = 0;
    /* "<p>%" by hand: this runs on every fetch. */
    if (p >= 100)
        pct[n++] = '1';
    if (p >= 10)
        pct[n++] = (char)('0' + p / 10 % 10);
    pct[n++] = (char)('0' + p % 10);
    pct[n++] = '%';
    pct[n] = '\0';
    sim_json_str_safe(w, pct);
}

static const char *fail_reason(enum sim_dialect d, enum sim_fail f)
{
    switch (f) {
    case SIM_FAIL_INVALID:
        return d == SIM_DIALECT_NOVICEZK ? "[Invalid parameter] Invalid value"
                                         : "Invalid parameter, Invalid value";
    case SIM_FAIL_BANNED:
        return "可能包含敏感词";
    case SIM_FAIL_CANCEL:
        return "取消任务";
    case SIM_FAIL_NONE:
        break;
    }
    return NULL;
}

static void put_description(struct sim_json *w, const struct sim_task *t,
                            enum sim_status st)
{
    char parent[24];
    char buf[96];

    if (st == SIM_STATUS_MODAL) {
        sim_json_str(w, "Waiting for window confirm");
        return;
    }
    sim_id_format(t->parent_id, parent, sizeof(parent));
    switch ((enum sim_action)t->action) {
    case SIM_ACTION_IMAGINE:
    case SIM_ACTION_SHORTEN:
        sim_json_str_prefixed(
            w, t->action == SIM_ACTION_IMAGINE ? "/imagine " : "/shorten ",
            t->prompt);
        return;
    case SIM_ACTION_UPSCALE:
        snprintf(buf, sizeof(buf), "/up %s U%d", parent, t->index);
        break;
    case SIM_ACTION_VARIATION:
        snprintf(buf, sizeof(buf), "/up %s V%d", parent, t->index);
        break;
    case SIM_ACTION_REROLL:
        snprintf(buf, sizeof(buf), "/up %s R", parent);
        break;
    case SIM_ACTION_BLEND:
        snprintf(buf, sizeof(buf), "/blend");
        break;
    case SIM_ACTION_DESCRIBE:
        snprintf(buf, sizeof(buf), "/describe");
        break;
    default:
        snprintf(buf, sizeof(buf), "Submit success");
        break;
    }
    sim_json_str(w, buf);
}

static void put_buttons(struct sim_json *w, const struct sim_task *t,
                        const struct sim_snap *s)
{
    struct sim_button b[SIM_MAX_BUTTONS];
    size_t n = 0;

    if (s->status == SIM_STATUS_SUCCESS)
        n = sim_content_buttons(t, b);
    sim_json_arr_open(w);
    for (size_t i = 0; i < n; i++) {
        sim_json_obj_open(w);
        sim_json_key(w, "customId");
        sim_json_str_safe(w, b[i].custom_id);
        sim_json_key(w, "emoji");
        sim_json_str_safe(w, b[i].emoji);
        sim_json_key(w, "label");
        sim_json_str_safe(w, b[i].label);
        sim_json_key(w, "type");
        sim_json_int(w, 2);
        sim_json_key(w, "style");
        sim_json_int(w, b[i].style);
        sim_json_obj_close(w);
    }
    sim_json_arr_close(w);
}

void sim_reply_task(struct sim_json *w, enum sim_dialect d,
                    const struct sim_task *t, const struct sim_snap *s)
{
    char id[24];
    char url[256];
    char *final = NULL;
    enum sim_status status = s->status;
    const char *reason = NULL;
    bool rich =
        s->status == SIM_STATUS_SUCCESS &&
        (t->action == SIM_ACTION_DESCRIBE || t->action == SIM_ACTION_SHORTEN);

    if (status == SIM_STATUS_CANCEL && d == SIM_DIALECT_TRUEAI)
        status = SIM_STATUS_FAILURE; /* TAI cancel = FAILURE 取消任务 */
    if (status == SIM_STATUS_FAILURE)
        reason = fail_reason(d, s->fail);
    if (rich)
        final = sim_content_final_prompt(t);

    sim_id_format(t->id, id, sizeof(id));
    sim_json_obj_open(w);
    sim_json_key(w, "id");
    sim_json_str_safe(w, id);
    sim_json_key(w, "action");
    sim_json_str_safe(w, sim_action_name((enum sim_action)t->action));
    sim_json_key(w, "status");
    sim_json_str_safe(w, sim_status_name(status));
    sim_json_key(w, "prompt");
    sim_json_str(w, t->prompt);
    sim_json_key(w, "promptEn");
    if (final != NULL && d == SIM_DIALECT_TRUEAI &&
        t->action == SIM_ACTION_DESCRIBE)
        sim_json_str(w, final); /* TAI puts describe output here too */
    else
        sim_json_str(w, t->prompt);
    sim_json_key(w, "description");
    put_description(w, t, status);
    sim_json_key(w, "state");
    if (t->state != NULL)
        sim_json_str(w, t->state);
    else
        put_none(w, d);
    sim_json_key(w, "submitTime");
    sim_json_int(w, t->submit_ms);
    sim_json_key(w, "startTime");
    put_time(w, d, s->start_ms);
    sim_json_key(w, "finishTime");
    put_time(w, d, s->finish_ms);
    sim_json_key(w, "imageUrl");
    if (sim_content_image_url(t, s, url, sizeof(url)) > 0)
        sim_json_str_safe(w, url);
    else
        put_none(w, d);
    sim_json_key(w, "progress");
    put_progress(w, d, s);
    sim_json_key(w, "failReason");
    if (reason != NULL)
        sim_json_str(w, reason);
    else
        put_none(w, d);
    sim_json_key(w, "buttons");
    put_buttons(w, t, s);
    sim_json_key(w, "properties");
    sim_json_obj_open(w);
    sim_json_key(w, "finalPrompt");
    sim_json_str(w, final != NULL ? final : t->prompt);
    if (d == SIM_DIALECT_NEWAPI) {
        /* new-api strips everything but these two. */
        sim_json_key(w, "finalZhPrompt");
        sim_json_str(w, "");
    } else {
        if (d == SIM_DIALECT_TRUEAI) {
            sim_json_key(w, "botType");
            sim_json_str(w, "MID_JOURNEY");
            sim_json_key(w, "discordInstanceId");
            sim_json_str(w, DISCORD_INSTANCE);
            sim_json_key(w, "discordChannelId");
            sim_json_str(w, DISCORD_INSTANCE);
        }
        if (s->status == SIM_STATUS_SUCCESS) {
            char hash[SIM_HASH_LEN + 1];

            sim_content_hash(t->id, hash);
            sim_json_key(w, "messageHash");
            sim_json_str_safe(w, hash);
        }
    }
    sim_json_obj_close(w);
    sim_json_obj_close(w);
    free(final);
}

static void put_result(struct sim_json *w, bool numeric_ids, uint64_t id)
{
    char buf[24];

    if (id == 0) {
        sim_json_null(w);
    } else if (numeric_ids) {
        sim_json_int(w, (int64_t)id);
    } else {
        sim_id_format(id, buf, sizeof(buf));
        sim_json_str(w, buf);
    }
}

void sim_reply_accept(struct sim_resp *r, enum sim_dialect d, bool numeric_ids,
                      const struct sim_accept *a)
{
    struct sim_json w;
    char desc[96];
    int code = 1;

    snprintf(desc, sizeof(desc), "Submit success");
    if (a->modal) {
        code = 21;
        snprintf(desc, sizeof(desc), "Waiting for window confirm");
        /* new-api rewrites 21 -> 1 except for CustomZoom and Inpaint. */
        if (d == SIM_DIALECT_NEWAPI && !a->modal_keeps_21)
            code = 1;
    } else if (a->queue_ahead > 0) {
        code = d == SIM_DIALECT_NEWAPI ? 1 : 22; /* new-api: 22 -> 1 */
        snprintf(desc, sizeof(desc), "排队中，前面还有%d个任务",
                 a->queue_ahead);
    }
    r->status = 200;
    r->ctype = CT_JSON;
    sim_json_begin(&w, r->body);
    sim_json_obj_open(&w);
    sim_json_key(&w, "code");
    sim_json_int(&w, code);
    sim_json_key(&w, "description");
    sim_json_str(&w, desc);
    sim_json_key(&w, "result");
    put_result(&w, numeric_ids, a->id);
    sim_json_key(&w, "properties");
    sim_json_obj_open(&w);
    if (a->modal) {
        sim_json_key(&w, "finalPrompt");
        sim_json_str(&w, a->final_prompt != NULL ? a->final_prompt : "");
        sim_json_key(&w, "remix");
        sim_json_bool(&w, true);
    } else if (a->queue_ahead > 0) {
        sim_json_key(&w, "numberOfQueues");
        sim_json_int(&w, a->queue_ahead);
    }
    if (d == SIM_DIALECT_TRUEAI) {
        sim_json_key(&w, "discordInstanceId");
        sim_json_str(&w, DISCORD_INSTANCE);
    }
    sim_json_obj_close(&w);
    sim_json_obj_close(&w);
}

struct reject_text {
    int code;         /* MJ code */
    const char *nzk;  /* novicezk description */
    const char *tai;  /* trueai description */
    const char *napi; /* new-api wrapper description (code 4) */
    bool tai_404;     /* trueai answers HTTP 404 */
};

static const struct reject_text reject_texts[] = {
    [SIM_REJECT_BAD_JSON] = {4, "参数错误", "参数错误",
                             "bind_request_body_failed", false},
    [SIM_REJECT_PROMPT_EMPTY] = {4, "prompt不能为空", "prompt不能为空",
                                 "prompt_is_required", false},
    [SIM_REJECT_BLEND_COUNT] = {4, "base64List参数错误",
                                "图片参数错误，2~5张图片",
                                "图片参数错误，2~5张图片", false},
    [SIM_REJECT_BASE64_FORMAT] = {4, "base64格式错误", "base64格式错误",
                                  "base64格式错误", false},
    [SIM_REJECT_DESCRIBE_EMPTY] = {4, "base64不能为空", "base64不能为空",
                                   "base64不能为空", false},
    [SIM_REJECT_TASK_ID_EMPTY] = {4, "taskId不能为空", "taskId不能为空",
                                  "task_id_is_required", false},
    [SIM_REJECT_CUSTOM_ID_EMPTY] = {4, "customId不能为空", "customId不能为空",
                                    "custom_id_is_required", false},
    [SIM_REJECT_PARENT_MISSING] = {3, "关联任务不存在或已失效",
                                   "关联任务不存在或已失效", "task_not_found",
                                   true},
    [SIM_REJECT_PARENT_STATUS] = {4, "关联任务状态错误", "关联任务状态错误",
                                  "task_status_not_success", false},
    [SIM_REJECT_UNKNOWN_ACTION] = {4, "未知的 Action 类型",
                                   "未知的 Action 类型", "未知的 Action 类型",
                                   false},
    [SIM_REJECT_MODAL_MISSING] = {3, "目标任务不存在", "目标任务不存在",
                                  "task_not_found", true},
    [SIM_REJECT_NOT_MODAL] = {4, "任务状态错误", "任务状态错误", "任务状态错误",
                              false},
    [SIM_REJECT_BANNED] = {24, "可能包含敏感词", "可能包含敏感词",
                           "可能包含敏感词", false},
    [SIM_REJECT_QUEUE_FULL] = {23, "队列已满，请稍后尝试",
                               "提交失败，队列已满，请稍后重试",
                               "队列已满，请稍后尝试", false},
    /* new-api answers its channel limit itself: see sim_reply_reject. */
    [SIM_REJECT_LIMIT] = {23, "队列已满，请稍后尝试",
                          "提交失败，队列已满，请稍后重试", NULL, false},
    /* new-api's own check; the others have none, so they get its text. */
    [SIM_REJECT_QUOTA] = {4, "quota_not_enough", "quota_not_enough",
                          "quota_not_enough", false},
};

/* new-api's own relay error: HTTP 400 {"description","type","code"}. */
static void newapi_wrapper(struct sim_resp *r, const char *desc, int code)
{
    struct sim_json w;
    char full[128];

    /* "<description> <result>": a trailing space when result is empty. */
    snprintf(full, sizeof(full), "%s ", desc);
    r->status = 400;
    r->ctype = CT_JSON;
    sim_json_begin(&w, r->body);
    sim_json_obj_open(&w);
    sim_json_key(&w, "description");
    sim_json_str(&w, full);
    sim_json_key(&w, "type");
    sim_json_str(&w, "upstream_error");
    sim_json_key(&w, "code");
    sim_json_int(&w, code);
    sim_json_obj_close(&w);
}

void sim_reply_reject(struct sim_resp *r, enum sim_dialect d, bool numeric_ids,
                      enum sim_reject why, const char *prompt, uint64_t result)
{
    const struct reject_text *rt = &reject_texts[why];
    struct sim_json w;
    int code = rt->code;
    const char *desc = d == SIM_DIALECT_NOVICEZK ? rt->nzk : rt->tai;

    if (why == SIM_REJECT_LIMIT && d == SIM_DIALECT_NEWAPI) {
        /* The channel limit: HTTP 429 code 30, as the injected 429. */
        sim_reply_fault(r, d, SIM_FAULT_429, true, false);
        return;
    }
    if ((why == SIM_REJECT_QUEUE_FULL || why == SIM_REJECT_LIMIT) &&
        d == SIM_DIALECT_TRUEAI) {
        code = 9; /* TAI reports queue full as a generic failure */
        result = 0;
    }
    if (d == SIM_DIALECT_NEWAPI && (code == 3 || code == 4)) {
        newapi_wrapper(r, rt->napi, 4);
        return;
    }
    r->status = (d == SIM_DIALECT_TRUEAI && rt->tai_404) ? 404 : 200;
    r->ctype = CT_JSON;
    sim_json_begin(&w, r->body);
    sim_json_obj_open(&w);
    sim_json_key(&w, "code");
    sim_json_int(&w, code);
    sim_json_key(&w, "description");
    sim_json_str(&w, desc);
    sim_json_key(&w, "result");
    put_result(&w, numeric_ids, result);
    sim_json_key(&w, "properties");
    sim_json_obj_open(&w);
    if (why == SIM_REJECT_BANNED) {
        sim_json_key(&w, "promptEn");
        sim_json_str(&w, prompt != NULL ? prompt : "");
        sim_json_key(&w, "bannedWord");
        sim_json_str(&w, "banned");
    } else if ((why == SIM_REJECT_QUEUE_FULL || why == SIM_REJECT_LIMIT) &&
               d != SIM_DIALECT_TRUEAI) {
        sim_json_key(&w, "discordInstanceId");
        sim_json_str(&w, DISCORD_INSTANCE);
    }
    sim_json_obj_close(&w);
    sim_json_obj_close(&w);
}

void sim_reply_not_found(struct sim_resp *r, enum sim_dialect d)
{
    switch (d) {
    case SIM_DIALECT_NOVICEZK:
        r->status = 200; /* controller returned null: empty body */
        r->ctype = NULL;
        return;
    case SIM_DIALECT_TRUEAI:
        r->status = 204; /* ASP.NET Core on a null result */
        r->ctype = NULL;
        return;
    case SIM_DIALECT_NEWAPI:
        newapi_wrapper(r, "task_no_found", 4);
        return;
    }
}

void sim_reply_auth(struct sim_resp *r, enum sim_dialect d)
{
    switch (d) {
    case SIM_DIALECT_NOVICEZK:
        r->status = 401;
        r->ctype = NULL;
        return;
    case SIM_DIALECT_TRUEAI:
        r->status = 403;
        r->ctype = CT_TEXT;
        sim_buf_adds(r->body, "未登录");
        return;
    case SIM_DIALECT_NEWAPI:
        r->status = 401;
        r->ctype = CT_JSON;
        sim_buf_adds(r->body, "{\"error\":{\"message\":\"无效的令牌\","
                              "\"type\":\"new_api_error\"}}");
        return;
    }
}

void sim_reply_bad_json(struct sim_resp *r, enum sim_dialect d)
{
    sim_reply_reject(r, d, false, SIM_REJECT_BAD_JSON, NULL, 0);
}

void sim_reply_fault(struct sim_resp *r, enum sim_dialect d, enum sim_fault f,
                     bool is_submit, bool html)
{
    switch (f) {
    case SIM_FAULT_500:
        r->status = 500;
        if (d == SIM_DIALECT_TRUEAI) {
            r->ctype = CT_JSON;
            sim_buf_adds(r->body, "{\"success\":false,\"code\":-1,"
                                  "\"message\":\"Internal Server Error\"}");
        } else {
            r->ctype = CT_TEXT;
            sim_buf_adds(r->body, "Internal Server Error");
        }
        return;
    case SIM_FAULT_429:
        r->status = 429;
        r->ctype = NULL;
        if (d == SIM_DIALECT_NEWAPI) {
            r->ctype = CT_JSON;
            sim_buf_adds(r->body, "{\"code\":30,\"description\":"
                                  "\"当前分组负载已饱和，请稍后再试\","
                                  "\"result\":null}");
        }
        return;
    case SIM_FAULT_SLOW:
        r->status = 503;
        if (d == SIM_DIALECT_NEWAPI) {
            r->ctype = CT_JSON;
            sim_buf_adds(r->body, "{\"error\":{\"message\":\"upstream "
                                  "request timed out\",\"type\":"
                                  "\"new_api_error\"}}");
        } else {
            r->ctype = CT_TEXT;
            sim_buf_adds(r->body, "Service Unavailable");
        }
        return;
    case SIM_FAULT_MALFORMED:
        r->status = 200;
        if (html) {
            r->ctype = CT_HTML;
            sim_buf_adds(r->body, "<html><body>502 Bad Gateway</body></html>");
        } else {
            r->ctype = CT_JSON;
            sim_buf_adds(r->body,
                         is_submit ? "{\"code\":1,\"descri" : "{\"id\":\"17");
        }
        return;
    default:
        r->status = 500;
        r->ctype = CT_TEXT;
        sim_buf_adds(r->body, "Internal Server Error");
        return;
    }
}
