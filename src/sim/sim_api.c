#include "sim_api.h"

#include <ctype.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "sim_content.h"
#include "xmalloc.h"

static bool is_blank(const char *s)
{
    for (; *s != '\0'; s++) {
        if (!isspace((unsigned char)*s))
            return false;
    }
    return true;
}

/* Borrowed string member, or NULL when absent or not a string. */
static const char *get_str(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

/*
 * A task id given as a string or (relay style) as a number. Returns 0,
 * -1 when absent or blank, -2 when present but not a valid id.
 */
static int get_task_id(const json_t *obj, const char *key, uint64_t *out)
{
    const json_t *v = json_object_get(obj, key);

    if (v == NULL || json_is_null(v))
        return -1;
    if (json_is_integer(v)) {
        json_int_t n = json_integer_value(v);

        if (n <= 0)
            return -2;
        *out = (uint64_t)n;
        return 0;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);

        if (is_blank(s))
            return -1;
        return sim_id_parse(s, strlen(s), out) == 0 ? 0 : -2;
    }
    return -2;
}

/*
 * The task a client may see: its own account's, and never a vanished one.
 * Another account's task is "not found", as in new-api (mj-api.md §4.2).
 */
static struct sim_task *lookup(const struct sim_api *api,
                               const struct sim_account *acct, uint64_t id)
{
    struct sim_task *t = sim_table_find(api->tasks, id);

    if (t == NULL || t->outcome == SIM_OUTCOME_VANISH ||
        t->account != sim_account_index(acct))
        return NULL;
    return t;
}

/* Counts a request or refusal twice: overall and for the account. */
static void count(struct sim_api *api, struct sim_account *acct,
                  enum sim_counter c, enum sim_acct_counter ac, uint64_t n)
{
    sim_stats_add(api->stats, c, n);
    sim_account_add(acct, ac, n);
}

/* novicezk insists on data URLs (BaseSubmitDTO + convertBase64Array). */
static bool data_url_ok(const struct sim_api *api, const char *s)
{
    return api->opts->dialect != SIM_DIALECT_NOVICEZK ||
           strncmp(s, "data:", 5) == 0;
}

static void reject(struct sim_api *api, struct sim_resp *r, enum sim_reject why,
                   const char *prompt, uint64_t result)
{
    sim_stats_add(api->stats, SIM_CTR_REJECTED, 1);
    sim_reply_reject(r, api->opts->dialect, api->opts->numeric_ids, why, prompt,
                     result);
}

/*
 * The checks real servers make last: the banned-word list (novicezk only;
 * the others fail the task later) and the account queue: its limits when
 * the submit starts a task (`starts`), then the injected queue-full fault.
 * Returns false after writing a refusal.
 */
static bool admit(struct sim_api *api, struct sim_account *acct,
                  enum sim_mode mode, bool starts, const char *prompt,
                  enum sim_fault fault, int64_t now_ms, struct sim_resp *r)
{
    if (api->opts->dialect == SIM_DIALECT_NOVICEZK &&
        sim_outcome_of(prompt) == SIM_OUTCOME_BANNED) {
        reject(api, r, SIM_REJECT_BANNED, prompt, 0);
        return false;
    }
    if (starts && !sim_account_may_start(acct, mode, now_ms)) {
        count(api, acct, SIM_CTR_LIMIT_REFUSALS, SIM_ACTR_LIMIT_REFUSALS, 1);
        reject(api, r, SIM_REJECT_LIMIT, NULL,
               sim_table_next_id(api->tasks, now_ms));
        return false;
    }
    if (fault == SIM_FAULT_QUEUE_FULL) {
        /* novicezk hands out an id it has already dropped. */
        sim_stats_fault(api->stats, SIM_FAULT_QUEUE_FULL);
        reject(api, r, SIM_REJECT_QUEUE_FULL, NULL,
               sim_table_next_id(api->tasks, now_ms));
        return false;
    }
    return true;
}

static int queue_ahead(struct sim_api *api)
{
    if (!sim_rng_chance(api->rng, api->opts->rate_in_queue))
        return 0;
    return sim_rng_range(api->rng, 1, 5);
}

/*
 * Accepts the new task t (stolen) for acct: stores it, starts it unless it
 * waits in MODAL, and answers 1/21/22.
 */
static void accept_new(struct sim_api *api, struct sim_account *acct,
                       enum sim_endpoint ep, enum sim_mode mode,
                       struct sim_task *t, bool keeps_21, enum sim_fault fault,
                       int64_t now_ms, struct sim_resp *r)
{
    struct sim_accept a;

    if (!admit(api, acct, mode, !t->modal, t->prompt, fault, now_ms, r)) {
        sim_task_free(t);
        return;
    }
    memset(&a, 0, sizeof(a));
    a.modal = t->modal;
    a.modal_keeps_21 = keeps_21;
    if (!t->modal)
        a.queue_ahead = queue_ahead(api);
    t->id = sim_table_next_id(api->tasks, now_ms);
    t->submit_ms = now_ms;
    t->outcome = (uint8_t)sim_outcome_of(t->prompt);
    t->account = (uint8_t)sim_account_index(acct);
    t->mode = (uint8_t)mode;
    sim_table_add(api->tasks, t); /* t is the newest: never evicted here */
    if (!t->modal)
        sim_account_start(acct, t, mode, sim_task_busy_until(t, &api->timing),
                          now_ms);
    a.id = t->id;
    a.final_prompt = t->prompt;
    sim_stats_accept(api->stats, ep, mode, t->state);
    sim_account_add(acct, SIM_ACTR_ACCEPTED, 1);
    sim_reply_accept(r, api->opts->dialect, api->opts->numeric_ids, &a);
}

static void submit_action(struct sim_api *api, struct sim_account *acct,
                          enum sim_mode mode, const json_t *root,
                          const char *state, enum sim_fault fault,
                          int64_t now_ms, struct sim_resp *r)
{
    const char *custom_id = get_str(root, "customId");
    struct sim_button_action act;
    struct sim_task *parent = NULL;
    struct sim_task *t;
    struct sim_snap snap;
    uint64_t pid = 0;
    int rc = get_task_id(root, "taskId", &pid);
    char *prompt;

    if (rc == -1) {
        reject(api, r, SIM_REJECT_TASK_ID_EMPTY, NULL, 0);
        return;
    }
    if (custom_id == NULL || is_blank(custom_id)) {
        reject(api, r, SIM_REJECT_CUSTOM_ID_EMPTY, NULL, 0);
        return;
    }
    if (rc == 0)
        parent = lookup(api, acct, pid);
    if (parent == NULL) {
        reject(api, r, SIM_REJECT_PARENT_MISSING, NULL, 0);
        return;
    }
    sim_task_snap(parent, &api->timing, now_ms, &snap);
    if (snap.status != SIM_STATUS_SUCCESS) {
        reject(api, r, SIM_REJECT_PARENT_STATUS, NULL, 0);
        return;
    }
    if (sim_content_action_of(parent, custom_id, &act) != 0) {
        reject(api, r, SIM_REJECT_UNKNOWN_ACTION, NULL, 0);
        return;
    }
    /* Take all we need from the parent now: adding may evict it. */
    prompt = sim_content_child_prompt(parent, &act);
    t = sim_task_new(0, act.action, prompt, state);
    free(prompt);
    t->parent_id = parent->id;
    t->index = (uint8_t)act.index;
    t->modal = act.kind != SIM_BUTTON_JOB;
    accept_new(api, acct, SIM_EP_ACTION, mode, t, act.kind == SIM_BUTTON_MODAL,
               fault, now_ms, r);
}

static void submit_modal(struct sim_api *api, struct sim_account *acct,
                         enum sim_mode mode, const json_t *root,
                         const char *state, enum sim_fault fault,
                         int64_t now_ms, struct sim_resp *r)
{
    const char *prompt = get_str(root, "prompt");
    struct sim_task *t = NULL;
    struct sim_snap snap;
    struct sim_accept a;
    uint64_t id = 0;
    int rc = get_task_id(root, "taskId", &id);

    if (rc == -1) {
        reject(api, r, SIM_REJECT_TASK_ID_EMPTY, NULL, 0);
        return;
    }
    if (rc == 0)
        t = lookup(api, acct, id);
    if (t == NULL) {
        reject(api, r, SIM_REJECT_MODAL_MISSING, NULL, 0);
        return;
    }
    sim_task_snap(t, &api->timing, now_ms, &snap);
    if (snap.status != SIM_STATUS_MODAL) {
        reject(api, r, SIM_REJECT_NOT_MODAL, NULL, 0);
        return;
    }
    if (prompt == NULL || is_blank(prompt))
        prompt = t->prompt; /* PLUS/TAI fall back to the prefilled one */
    if (!admit(api, acct, mode, true, prompt, fault, now_ms, r))
        return;
    if (prompt != t->prompt)
        sim_task_set_prompt(t, prompt);
    if (state != NULL && *state != '\0') {
        free(t->state);
        t->state = xstrdup(state);
    }
    /* The same task now runs its normal course from this instant. */
    t->modal = false;
    t->submit_ms = now_ms;
    t->outcome = (uint8_t)sim_outcome_of(t->prompt);
    sim_account_start(acct, t, mode, sim_task_busy_until(t, &api->timing),
                      now_ms);
    memset(&a, 0, sizeof(a));
    a.id = t->id;
    a.queue_ahead = queue_ahead(api);
    sim_stats_accept(api->stats, SIM_EP_MODAL, mode, state);
    sim_account_add(acct, SIM_ACTR_ACCEPTED, 1);
    sim_reply_accept(r, api->opts->dialect, api->opts->numeric_ids, &a);
}

/* Validates base64Array when present: strings, data URLs for novicezk. */
static bool images_ok(const struct sim_api *api, const json_t *arr)
{
    size_t i;
    const json_t *v;

    if (arr == NULL)
        return true;
    if (!json_is_array(arr))
        return false;
    json_array_foreach(arr, i, v)
    {
        if (!json_is_string(v) || !data_url_ok(api, json_string_value(v)))
            return false;
    }
    return true;
}

void sim_api_submit(struct sim_api *api, struct sim_account *acct,
                    enum sim_endpoint ep, enum sim_mode mode, const char *body,
                    size_t len, enum sim_fault fault, int64_t now_ms,
                    struct sim_resp *r)
{
    json_t *root;
    json_error_t jerr;
    const char *state;
    const char *prompt;
    const json_t *arr;
    struct sim_task *t = NULL;

    count(api, acct, SIM_CTR_SUBMITS, SIM_ACTR_SUBMITS, 1);
    if (sim_account_flags(acct)->no_quota) {
        /* new-api checks the user's quota before it relays anything. */
        count(api, acct, SIM_CTR_QUOTA_REFUSALS, SIM_ACTR_QUOTA_REFUSALS, 1);
        reject(api, r, SIM_REJECT_QUOTA, NULL, 0);
        return;
    }
    root = json_loadb(body, len, 0, &jerr);
    if (root == NULL || !json_is_object(root)) {
        reject(api, r, SIM_REJECT_BAD_JSON, NULL, 0);
        goto out;
    }
    state = get_str(root, "state");
    prompt = get_str(root, "prompt");
    arr = json_object_get(root, "base64Array");
    switch (ep) {
    case SIM_EP_IMAGINE:
    case SIM_EP_SHORTEN:
        if (prompt == NULL || is_blank(prompt)) {
            reject(api, r, SIM_REJECT_PROMPT_EMPTY, NULL, 0);
            goto out;
        }
        if (ep == SIM_EP_IMAGINE && !images_ok(api, arr)) {
            reject(api, r, SIM_REJECT_BASE64_FORMAT, NULL, 0);
            goto out;
        }
        t = sim_task_new(
            0, ep == SIM_EP_IMAGINE ? SIM_ACTION_IMAGINE : SIM_ACTION_SHORTEN,
            prompt, state);
        break;
    case SIM_EP_BLEND: {
        size_t n = json_array_size(arr);
        size_t i;
        const json_t *v;
        bool strings = json_is_array(arr);

        json_array_foreach(arr, i, v)
        {
            if (!json_is_string(v))
                strings = false;
        }
        if (!strings || n < 2 || n > 5) {
            reject(api, r, SIM_REJECT_BLEND_COUNT, NULL, 0);
            goto out;
        }
        if (!images_ok(api, arr)) {
            reject(api, r, SIM_REJECT_BASE64_FORMAT, NULL, 0);
            goto out;
        }
        t = sim_task_new(0, SIM_ACTION_BLEND, "", state);
        break;
    }
    case SIM_EP_DESCRIBE: {
        const char *b64 = get_str(root, "base64");
        const char *link = get_str(root, "link");
        bool has_b64 = b64 != NULL && !is_blank(b64);
        bool has_link = link != NULL && !is_blank(link);

        if (!has_b64 && !has_link) {
            reject(api, r, SIM_REJECT_DESCRIBE_EMPTY, NULL, 0);
            goto out;
        }
        if (has_b64 && !data_url_ok(api, b64)) {
            reject(api, r, SIM_REJECT_BASE64_FORMAT, NULL, 0);
            goto out;
        }
        t = sim_task_new(0, SIM_ACTION_DESCRIBE, "", state);
        break;
    }
    case SIM_EP_ACTION:
        submit_action(api, acct, mode, root, state, fault, now_ms, r);
        goto out;
    case SIM_EP_MODAL:
        submit_modal(api, acct, mode, root, state, fault, now_ms, r);
        goto out;
    default:
        reject(api, r, SIM_REJECT_BAD_JSON, NULL, 0);
        goto out;
    }
    accept_new(api, acct, ep, mode, t, false, fault, now_ms, r);
out:
    json_decref(root);
}

void sim_api_fetch(struct sim_api *api, struct sim_account *acct,
                   const char *id, size_t id_len, int64_t now_ms,
                   struct sim_resp *r)
{
    struct sim_task *t = NULL;
    struct sim_snap snap;
    struct sim_json w;
    uint64_t n;

    count(api, acct, SIM_CTR_FETCHES, SIM_ACTR_FETCHES, 1);
    if (sim_id_parse(id, id_len, &n) == 0)
        t = lookup(api, acct, n);
    if (t == NULL) {
        sim_reply_not_found(r, api->opts->dialect);
        return;
    }
    sim_account_read(acct, t, now_ms);
    sim_task_snap(t, &api->timing, now_ms, &snap);
    r->status = 200;
    r->ctype = "application/json";
    sim_json_begin(&w, r->body);
    sim_reply_task(&w, api->opts->dialect, t, &snap);
}

/* An id in a list call: a string or a number. */
static struct sim_task *list_lookup(const struct sim_api *api,
                                    const struct sim_account *acct,
                                    const json_t *v)
{
    uint64_t id;

    if (json_is_string(v)) {
        if (sim_id_parse(json_string_value(v), json_string_length(v), &id) != 0)
            return NULL;
    } else if (json_is_integer(v) && json_integer_value(v) > 0) {
        id = (uint64_t)json_integer_value(v);
    } else {
        return NULL;
    }
    return lookup(api, acct, id);
}

void sim_api_list(struct sim_api *api, struct sim_account *acct,
                  const char *body, size_t len, int64_t now_ms,
                  struct sim_resp *r)
{
    json_t *root;
    json_error_t jerr;
    const json_t *ids;
    struct sim_json w;
    size_t n;

    count(api, acct, SIM_CTR_BATCH_FETCHES, SIM_ACTR_BATCH_FETCHES, 1);
    root = json_loadb(body, len, 0, &jerr);
    if (root == NULL || !json_is_object(root)) {
        json_decref(root);
        sim_reply_bad_json(r, api->opts->dialect);
        return;
    }
    ids = json_object_get(root, "ids");
    n = json_is_array(ids) ? json_array_size(ids) : 0;
    count(api, acct, SIM_CTR_BATCH_IDS, SIM_ACTR_BATCH_IDS, n);
    if (++api->list_epoch == 0)
        api->list_epoch = 1;
    r->status = 200;
    r->ctype = "application/json";
    sim_json_begin(&w, r->body);
    sim_json_arr_open(&w);
    /* Reverse order on purpose: clients must match by id (mj-api.md §2). */
    for (size_t i = n; i-- > 0;) {
        struct sim_task *t = list_lookup(api, acct, json_array_get(ids, i));
        struct sim_snap snap;

        if (t == NULL || t->mark == api->list_epoch)
            continue;
        t->mark = api->list_epoch;
        sim_account_read(acct, t, now_ms);
        sim_task_snap(t, &api->timing, now_ms, &snap);
        sim_reply_task(&w, api->opts->dialect, t, &snap);
    }
    sim_json_arr_close(&w);
    json_decref(root);
}

void sim_api_cancel(struct sim_api *api, struct sim_account *acct,
                    const char *id, size_t id_len, int64_t now_ms,
                    struct sim_resp *r)
{
    struct sim_task *t = NULL;
    struct sim_snap snap;
    uint64_t n;

    sim_stats_add(api->stats, SIM_CTR_CANCELS, 1);
    if (sim_id_parse(id, id_len, &n) == 0)
        t = lookup(api, acct, n);
    if (t == NULL) {
        sim_reply_not_found(r, api->opts->dialect);
        return;
    }
    sim_task_snap(t, &api->timing, now_ms, &snap);
    if (!sim_status_terminal(snap.status) && t->cancel_ms == 0) {
        t->cancel_ms = now_ms > 0 ? now_ms : 1;
        sim_account_stop(acct, t); /* CANCEL from now on */
    }
    r->status = 200;
    r->ctype = NULL;
}
