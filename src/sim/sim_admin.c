#include "sim_admin.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "log.h"
#include "sim_json.h"

#define CT_JSON "application/json"
#define CT_TEXT "text/plain; charset=utf-8"

static void resp_text(struct sim_resp *r, int status, const char *text)
{
    r->status = status;
    r->ctype = CT_TEXT;
    sim_buf_adds(r->body, text);
}

/* Answers status with {"error": text}. */
static void resp_error(struct sim_resp *r, int status, const char *text)
{
    struct sim_json w;

    r->status = status;
    r->ctype = CT_JSON;
    sim_json_begin(&w, r->body);
    sim_json_obj_open(&w);
    sim_json_key(&w, "error");
    sim_json_str(&w, text);
    sim_json_obj_close(&w);
}

/* Answers 200 with doc (stolen; NULL = out of memory) as sorted JSON. */
static void resp_doc(struct sim_resp *r, json_t *doc)
{
    char *json =
        doc != NULL ? json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS) : NULL;

    json_decref(doc);
    if (json == NULL) {
        resp_text(r, 500, "out of memory");
        return;
    }
    r->status = 200;
    r->ctype = CT_JSON;
    sim_buf_adds(r->body, json);
    free(json);
}

/* doc with "accounts" set to accts; both stolen. NULL if either is. */
static json_t *with_accounts(json_t *doc, json_t *accts)
{
    if (doc == NULL || accts == NULL) {
        json_decref(doc);
        json_decref(accts);
        return NULL;
    }
    if (json_object_set_new(doc, "accounts", accts) != 0) {
        json_decref(doc);
        return NULL;
    }
    return doc;
}

void sim_admin_stats(const struct sim_admin *ad, int64_t now_ms,
                     struct sim_resp *r)
{
    resp_doc(r,
             with_accounts(sim_stats_doc(ad->stats, sim_table_count(ad->tasks)),
                           sim_accounts_json(ad->accounts, now_ms)));
}

void sim_admin_accounts(const struct sim_admin *ad, int64_t now_ms,
                        struct sim_resp *r)
{
    resp_doc(r, with_accounts(sim_accounts_limits_json(ad->accounts),
                              sim_accounts_json(ad->accounts, now_ms)));
}

static bool query_drops_tasks(const char *query)
{
    struct evkeyvalq args;
    const char *v;
    bool drop = false;

    TAILQ_INIT(&args);
    if (evhttp_parse_query_str(query, &args) == 0) {
        v = evhttp_find_header(&args, "tasks");
        drop = v != NULL && (strcmp(v, "1") == 0 || strcmp(v, "true") == 0);
    }
    evhttp_clear_headers(&args);
    return drop;
}

void sim_admin_reset(const struct sim_admin *ad, const char *query,
                     const char *body, size_t len, int64_t now_ms,
                     struct sim_resp *r)
{
    bool drop = query != NULL && query_drops_tasks(query);
    size_t dropped = 0;
    struct sim_json w;

    if (len > 0) {
        json_error_t jerr;
        json_t *root = json_loadb(body, len, 0, &jerr);

        if (json_is_true(json_object_get(root, "tasks")))
            drop = true;
        json_decref(root);
    }
    if (drop)
        dropped = sim_table_clear(ad->tasks); /* empties the heaps too */
    sim_stats_reset(ad->stats);
    sim_accounts_reset(ad->accounts, now_ms);
    log_info("reset: counters zeroed, %zu tasks dropped", dropped);
    r->status = 200;
    r->ctype = CT_JSON;
    sim_json_begin(&w, r->body);
    sim_json_obj_open(&w);
    sim_json_key(&w, "reset");
    sim_json_bool(&w, true);
    sim_json_key(&w, "tasks_dropped");
    sim_json_int(&w, (int64_t)dropped);
    sim_json_obj_close(&w);
}

/*
 * Reads the body into *f. Any unknown field or non-boolean value is an
 * error, so that a typo in a test fails loudly instead of changing
 * nothing. Returns 0 or -1.
 */
static int parse_flags(const char *body, size_t len,
                       struct sim_account_flags *f)
{
    json_error_t jerr;
    json_t *root;
    const char *key;
    json_t *v;
    int rc = 0;

    if (len == 0)
        return 0;
    root = json_loadb(body, len, 0, &jerr);
    if (!json_is_object(root)) {
        json_decref(root);
        return -1;
    }
    json_object_foreach(root, key, v)
    {
        if (!json_is_boolean(v))
            rc = -1;
        else if (strcmp(key, "revoked") == 0)
            f->revoked = json_is_true(v);
        else if (strcmp(key, "quota") == 0)
            f->no_quota = !json_is_true(v);
        else if (strcmp(key, "down") == 0)
            f->down = json_is_true(v);
        else
            rc = -1;
    }
    json_decref(root);
    return rc;
}

void sim_admin_account(const struct sim_admin *ad, const char *name,
                       size_t name_len, const char *body, size_t len,
                       int64_t now_ms, struct sim_resp *r)
{
    struct sim_account *a = sim_accounts_by_name(ad->accounts, name, name_len);
    struct sim_account_flags next;
    json_t *doc;

    if (a == NULL) {
        resp_error(r, 404, "no such account");
        return;
    }
    next = *sim_account_flags(a);
    if (parse_flags(body, len, &next) != 0) {
        resp_error(r, 400,
                   "expected a JSON object with revoked, quota, down: each "
                   "true or false");
        return;
    }
    *sim_account_flags(a) = next;
    log_info("account %s: revoked %s, quota %s, down %s", sim_account_name(a),
             next.revoked ? "yes" : "no", next.no_quota ? "no" : "yes",
             next.down ? "yes" : "no");
    doc = sim_account_json(a, now_ms);
    if (doc != NULL &&
        json_object_set_new(doc, "name", json_string(sim_account_name(a))) !=
            0) {
        json_decref(doc);
        doc = NULL;
    }
    resp_doc(r, doc);
}
