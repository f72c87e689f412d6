#include "job.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

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

/* Copies a readable id and action into err even when the job is invalid,
 * so the INVALID result still names the job whenever it can. */
static void salvage(json_t *root, struct job_error *err)
{
    json_t *id = json_object_get(root, "id");
    json_t *action = json_object_get(root, "action");

    if (json_is_string(id) &&
        job_id_valid(json_string_value(id), json_string_length(id)))
        snprintf(err->id, sizeof(err->id), "%s", json_string_value(id));
    if (json_is_string(action)) {
        enum job_action a;

        if (job_action_parse(json_string_value(action), &a) == 0)
            snprintf(err->action, sizeof(err->action), "%s",
                     job_action_name(a));
    }
}

static int validate(json_t *root, long max_bytes, struct job_spec *out,
                    struct job_error *err)
{
    json_t *id, *action, *body, *mode, *timeout, *meta, *reply_to;

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

    out->timeout_s = 0;
    timeout = json_object_get(root, "timeout_s");
    if (timeout != NULL && !json_is_null(timeout)) {
        double t = json_is_number(timeout) ? json_number_value(timeout) : -1;

        if (!json_is_number(timeout) || !(t > 0) || !isfinite(t))
            return fail(err, "timeout_s", "%s", "must be a number > 0");
        if (t > 31536000)
            return fail(err, "timeout_s", "%s",
                        "must be at most 31536000 (one year)");
        out->timeout_s = t < 1 ? 1 : (long)ceil(t);
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
    return 0;
}

int job_parse(const char *payload, size_t len, long max_bytes,
              struct job_spec *out, struct job_error *err)
{
    json_error_t jerr;
    json_t *root;
    int rc;

    memset(out, 0, sizeof(*out));
    memset(err, 0, sizeof(*err));
    if (max_bytes > 0 && len > (size_t)max_bytes) {
        char limit[64];

        snprintf(limit, sizeof(limit), "%zu bytes, limit %ld", len, max_bytes);
        return fail(err, "(payload)", "too large: %s", limit);
    }
    root = json_loadb(payload, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        char where[160];

        snprintf(where, sizeof(where), "%.100s at position %d", jerr.text,
                 jerr.position);
        return fail(err, "(payload)", "not valid JSON: %s", where);
    }
    salvage(root, err);
    rc = validate(root, max_bytes, out, err);
    json_decref(root);
    if (rc != 0)
        job_spec_clear(out);
    return rc;
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

char *job_submit_body(const struct job_spec *spec, const char *notify_hook,
                      size_t *len)
{
    /* A shallow copy: the body's members (base64 images, megabytes) are
     * shared by reference, never duplicated. */
    json_t *body = json_copy(spec->body);
    char *text;

    json_object_set_new(body, "state", json_string(spec->id));
    if (notify_hook != NULL && notify_hook[0] != '\0')
        json_object_set_new(body, "notifyHook", json_string(notify_hook));
    text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (text == NULL)
        abort(); /* only on allocation failure */
    *len = strlen(text);
    return text;
}
