#include "job.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "jsonscan.h"
#include "xmalloc.h"

static const char *const action_names[ACTION_COUNT] = {
    "imagine", "blend", "describe", "shorten", "action", "modal",
};

static const char *const mode_names[MODE_COUNT] = {"", "fast", "relax",
                                                   "turbo"};

const char *job_action_name(enum job_action action)
{
    return (unsigned)action < ACTION_COUNT ? action_names[action] : "";
}

int job_action_parse(const char *name, enum job_action *out)
{
    for (int i = 0; i < ACTION_COUNT; i++) {
        if (strcmp(name, action_names[i]) == 0) {
            *out = (enum job_action)i;
            return 0;
        }
    }
    return -1;
}

const char *job_mode_name(enum mode mode)
{
    return (unsigned)mode < MODE_COUNT ? mode_names[mode] : "";
}

int job_id_valid(const char *s, size_t len)
{
    if (len == 0 || len > JOB_ID_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == ':' ||
              c == '-'))
            return 0;
    }
    return 1;
}

static int fail(struct job_error *err, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct job_error *err, const char *field, const char *fmt, ...)
{
    va_list ap;

    snprintf(err->field, sizeof(err->field), "%s", field);
    va_start(ap, fmt);
    vsnprintf(err->reason, sizeof(err->reason), fmt, ap);
    va_end(ap);
    return -1;
}

/* Copies a plain string member (no escapes needed: ids, action names)
 * found by scanning, so even a payload too large or too broken to parse
 * keeps its name. Returns 0 when found and valid per job_id_valid. */
static int scan_word(const char *payload, size_t len, const char *key,
                     char *buf, size_t size)
{
    size_t off, vlen;

    if (jsonscan_member(payload, len, key, &off, &vlen) != 0 || vlen < 3 ||
        payload[off] != '"' || payload[off + vlen - 1] != '"' ||
        !job_id_valid(payload + off + 1, vlen - 2) || vlen - 2 >= size)
        return -1;
    memcpy(buf, payload + off + 1, vlen - 2);
    buf[vlen - 2] = '\0';
    return 0;
}

/* Fills err's id, action and reply_to from whatever is readable, so the
 * INVALID result reaches its producer under its id. */
static void salvage(const char *payload, size_t len, struct job_error *err)
{
    char action[16];
    enum job_action a;

    if (scan_word(payload, len, "id", err->id, sizeof(err->id)) != 0)
        err->id[0] = '\0';
    if (scan_word(payload, len, "action", action, sizeof(action)) == 0 &&
        job_action_parse(action, &a) == 0)
        snprintf(err->action, sizeof(err->action), "%s", job_action_name(a));
    if (scan_word(payload, len, "reply_to", err->reply_to,
                  sizeof(err->reply_to)) != 0)
        err->reply_to[0] = '\0';
}

static int validate(json_t *root, long max_bytes, struct job_spec *out,
                    struct job_error *err)
{
    json_t *id, *action, *body, *mode, *timeout, *meta, *reply_to, *enqueued;

    (void)max_bytes;
    if (!json_is_object(root))
        return fail(err, "(payload)", "%s", "a job must be a JSON object");

    id = json_object_get(root, "id");
    if (id == NULL)
        return fail(err, "id", "%s", "missing (required)");
    if (!json_is_string(id))
        return fail(err, "id", "%s", "must be a string");
    if (!job_id_valid(json_string_value(id), json_string_length(id)))
        return fail(err, "id", "%s",
                    "must be 1-128 characters of A-Z a-z 0-9 . _ : -");
    snprintf(out->id, sizeof(out->id), "%s", json_string_value(id));

    action = json_object_get(root, "action");
    if (action == NULL)
        return fail(err, "action", "%s", "missing (required)");
    if (!json_is_string(action) ||
        job_action_parse(json_string_value(action), &out->action) != 0)
        return fail(err, "action", "%s",
                    "must be one of imagine, blend, describe, shorten, "
                    "action, modal");

    body = json_object_get(root, "body");
    if (body == NULL)
        return fail(err, "body", "%s", "missing (required)");
    if (!json_is_object(body))
        return fail(err, "body", "%s", "must be a JSON object");

    out->mode = MODE_DEFAULT;
    mode = json_object_get(root, "mode");
    if (mode != NULL && !json_is_null(mode)) {
        const char *m = json_is_string(mode) ? json_string_value(mode) : "";
        int found = 0;

        for (int i = MODE_FAST; i < MODE_COUNT; i++) {
            if (strcmp(m, mode_names[i]) == 0) {
                out->mode = (enum mode)i;
                found = 1;
            }
        }
        if (!found)
            return fail(err, "mode", "%s", "must be one of fast, relax, turbo");
    }

    out->timeout_ms = 0;
    timeout = json_object_get(root, "timeout_s");
    if (timeout != NULL && !json_is_null(timeout)) {
        double t = json_is_number(timeout) ? json_number_value(timeout) : -1;

        if (!json_is_number(timeout) || !(t > 0) || !isfinite(t))
            return fail(err, "timeout_s", "%s", "must be a number > 0");
        if (t > 31536000)
            return fail(err, "timeout_s", "%s",
                        "must be at most 31536000 (one year)");
        out->timeout_ms = (long)ceil(t * 1000);
    }

    /* Optional, for the queue wait metric only: anything but a usable
     * number is ignored, never INVALID (docs/contract.md). */
    enqueued = json_object_get(root, "enqueued_ms");
    if (json_is_number(enqueued)) {
        double e = json_number_value(enqueued);

        if (isfinite(e) && e > 0 && e < 9007199254740992.0) /* 2^53 */
            out->enqueued_ms = (int64_t)e;
    }

    reply_to = json_object_get(root, "reply_to");
    if (reply_to != NULL && !json_is_null(reply_to)) {
        if (!json_is_string(reply_to))
            return fail(err, "reply_to", "%s", "must be a string");
        if (!job_id_valid(json_string_value(reply_to),
                          json_string_length(reply_to)))
            return fail(err, "reply_to", "%s",
                        "must be 1-128 characters of A-Z a-z 0-9 . _ : -");
        out->reply_to = xstrdup(json_string_value(reply_to));
    }

    /* "meta": any JSON, echoed verbatim; a JSON null is kept as null. */
    meta = json_object_get(root, "meta");
    if (meta != NULL)
        out->meta = json_incref(meta);
    out->body = json_incref(body);
    out->body_plain = json_object_get(body, "state") == NULL &&
                      json_object_get(body, "notifyHook") == NULL;
    /* A follow-up names the task it acts on: it must go to the account
     * that ran that task. Any shape the server would not take is left
     * for the server to refuse. */
    if (out->action == ACTION_ACTION || out->action == ACTION_MODAL) {
        json_t *task = json_object_get(body, "taskId");

        if (json_is_string(task) &&
            json_string_length(task) < sizeof(out->parent_task))
            snprintf(out->parent_task, sizeof(out->parent_task), "%s",
                     json_string_value(task));
        else if (json_is_integer(task))
            snprintf(out->parent_task, sizeof(out->parent_task),
                     "%" JSON_INTEGER_FORMAT, json_integer_value(task));
    }
    return 0;
}

int job_parse(const char *payload, size_t len, long max_bytes,
              struct job_spec *out, struct job_error *err)
{
    json_error_t jerr;
    json_t *root;
    size_t off, vlen;
    int rc;

    memset(out, 0, sizeof(*out));
    memset(err, 0, sizeof(*err));
    if (max_bytes > 0 && len > (size_t)max_bytes) {
        salvage(payload, len, err);
        return fail(err, "(payload)", "too large: %zu bytes, limit %ld", len,
                    max_bytes);
    }
    root = json_loadb(payload, len, JSON_REJECT_DUPLICATES, &jerr);
    /* Integers beyond 64 bits are valid JSON (meta is "any JSON"): parse
     * them as reals for validation; the text itself travels verbatim. */
    if (root == NULL && strstr(jerr.text, "too big") != NULL)
        root =
            json_loadb(payload, len,
                       JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL, &jerr);
    if (root == NULL) {
        salvage(payload, len, err);
        /* A key given twice is ambiguous: salvage neither value. */
        if (strstr(jerr.text, "duplicate") != NULL) {
            if (strstr(jerr.text, "'\"id\"'") != NULL)
                err->id[0] = '\0';
            if (strstr(jerr.text, "'\"action\"'") != NULL)
                err->action[0] = '\0';
            if (strstr(jerr.text, "'\"reply_to\"'") != NULL)
                err->reply_to[0] = '\0';
        }
        char where[160];

        snprintf(where, sizeof(where), "%.100s at position %d", jerr.text,
                 jerr.position);
        return fail(err, "(payload)", "not valid JSON: %s", where);
    }
    salvage(payload, len, err);
    rc = validate(root, max_bytes, out, err);
    json_decref(root);
    if (rc != 0) {
        job_spec_clear(out);
        return rc;
    }
    /* The document is valid JSON now, so the scanner's spans are exact. */
    if (jsonscan_member(payload, len, "body", &off, &vlen) == 0) {
        out->body_text = payload + off;
        out->body_len = vlen;
    }
    if (jsonscan_member(payload, len, "meta", &off, &vlen) == 0) {
        out->meta_text = payload + off;
        out->meta_len = vlen;
    }
    return 0;
}

void job_spec_clear(struct job_spec *spec)
{
    if (spec == NULL)
        return;
    json_decref(spec->body);
    json_decref(spec->meta);
    free(spec->reply_to);
    memset(spec, 0, sizeof(*spec));
}

/* Writes s as a JSON string literal; s needs no escaping beyond quotes and
 * backslashes (job ids, validated URLs). Returns the bytes written. */
static size_t put_string(char *out, const char *s)
{
    size_t n = 0;

    out[n++] = '"';
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            out[n++] = '\\';
        out[n++] = *s;
    }
    out[n++] = '"';
    return n;
}

/* The body's own text with "state" (and "notifyHook") spliced in after
 * its opening brace: no byte of the producer's body is rewritten. */
static char *splice_body(const struct job_spec *spec, const char *notify_hook,
                         size_t *len)
{
    size_t hook = notify_hook != NULL ? strlen(notify_hook) : 0;
    size_t cap = spec->body_len + 2 * (strlen(spec->id) + hook) + 64;
    char *out = xmalloc(cap);
    const char *rest = spec->body_text + 1; /* after '{' */
    size_t rest_len = spec->body_len - 1;
    size_t n = 0, i = 0;

    out[n++] = '{';
    memcpy(out + n, "\"state\":", 8);
    n += 8;
    n += put_string(out + n, spec->id);
    if (hook > 0) {
        memcpy(out + n, ",\"notifyHook\":", 14);
        n += 14;
        n += put_string(out + n, notify_hook);
    }
    while (i < rest_len && (rest[i] == ' ' || rest[i] == '\t' ||
                            rest[i] == '\n' || rest[i] == '\r'))
        i++;
    if (i < rest_len && rest[i] != '}')
        out[n++] = ',';
    memcpy(out + n, rest, rest_len);
    n += rest_len;
    out[n] = '\0';
    *len = n;
    return out;
}

/* The body re-serialised by jansson, when splicing would leave a second
 * "state" or "notifyHook" in it. */
static char *rebuild_body(const struct job_spec *spec, const char *notify_hook,
                          size_t *len)
{
    /* A shallow copy: the body's members (base64 images, megabytes) are
     * shared by reference, never duplicated. */
    json_t *body = json_copy(spec->body);
    char *text;

    json_object_set_new(body, "state", json_string(spec->id));
    if (notify_hook != NULL)
        json_object_set_new(body, "notifyHook", json_string(notify_hook));
    text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (text == NULL)
        abort(); /* only on allocation failure */
    *len = strlen(text);
    return text;
}

char *job_submit_body(const struct job_spec *spec, const char *notify_hook,
                      size_t *len)
{
    if (notify_hook != NULL && notify_hook[0] == '\0')
        notify_hook = NULL;
    if (spec->body_plain && spec->body_text != NULL && spec->body_len >= 2 &&
        spec->body_text[0] == '{')
        return splice_body(spec, notify_hook, len);
    return rebuild_body(spec, notify_hook, len);
}
