#include "enqueue.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/time.h>
#include <sysexits.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <jansson.h>

#include "clock.h"
#include "cli.h"
#include "config.h"
#include "job.h"
#include "keys.h"
#include "worker.h"
#include "xmalloc.h"

/*
 * `mjq enqueue`: a producer on the command line. Builds a job from flags
 * (or takes one from stdin), validates it with job_parse() exactly as a
 * worker will, LPUSHes it as the wire contract says and, with --wait,
 * follows the results stream until the job's result arrives.
 *
 * A short-lived CLI, so it speaks synchronous hiredis. Internal functions
 * return 0 or a negative exit code (-EX_DATAERR...); enqueue_main turns
 * that into the process status.
 */

#define EXIT_NOT_SUCCESS  1   /* --wait: the result's status is not SUCCESS */
#define EXIT_WAIT_TIMEOUT 124 /* --wait: no result within --wait-timeout */
#define MAX_IMAGES        16
#define WAIT_DEFAULT_S    900
#define REDIS_TIMEOUT_S   5

struct opts {
    const char *action;    /* --action */
    const char *prompt;    /* --prompt: body.prompt */
    const char *body;      /* --body: JSON object, the body to start from */
    const char *task_id;   /* --task-id: body.taskId (action, modal) */
    const char *custom_id; /* --custom-id: body.customId (action) */
    const char *mode;      /* --mode */
    const char *timeout_s; /* --timeout-s, as typed */
    const char *meta;      /* --meta: JSON text */
    const char *reply_to;  /* --reply-to */
    const char *id;        /* --id, else generated */
    const char *queue;     /* --queue, else the first configured queue */
    const char *images[MAX_IMAGES]; /* --image files, in order */
    size_t nimages;
    const char *wait_timeout; /* --wait-timeout, as typed */
    int from_stdin;           /* --stdin or "-" */
    int wait;                 /* --wait */
    int json_out;             /* --json */
    int force;                /* --force: push even an invalid job */
    char **rest;              /* argv for worker_parse_args: config flags */
    int nrest;
};

/* The payload to push, and what --wait needs to know about it. */
struct payload {
    char *text;              /* exactly what gets pushed (owned) */
    size_t len;              /* bytes in text */
    char id[JOB_ID_MAX + 1]; /* the job's id, "" if unreadable */
    char *reply_to;          /* owned; NULL for the shared results stream */
};

struct value_flag {
    const char *name;
    size_t off; /* offsetof(struct opts, <a const char * field>) */
};

static const struct value_flag value_flags[] = {
    {"action", offsetof(struct opts, action)},
    {"prompt", offsetof(struct opts, prompt)},
    {"body", offsetof(struct opts, body)},
    {"task-id", offsetof(struct opts, task_id)},
    {"custom-id", offsetof(struct opts, custom_id)},
    {"mode", offsetof(struct opts, mode)},
    {"timeout-s", offsetof(struct opts, timeout_s)},
    {"meta", offsetof(struct opts, meta)},
    {"reply-to", offsetof(struct opts, reply_to)},
    {"id", offsetof(struct opts, id)},
    {"queue", offsetof(struct opts, queue)},
    {"wait-timeout", offsetof(struct opts, wait_timeout)},
    {"image", offsetof(struct opts, images)}, /* appends */
};

/* Result fields that hold JSON text, shown decoded. */
static const char *const json_fields[] = {"task", "buttons", "meta"};

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: mjq enqueue --action A [job options] [--wait] [settings]\n"
        "       mjq enqueue --stdin [--queue Q] [--wait] [settings] < job.json"
        "\n\n"
        "Pushes one job onto a queue (LPUSH <prefix>queue:<queue>, "
        "docs/contract.md)\nafter validating it as a worker would, and "
        "prints its id. With --wait it\nthen follows the results stream "
        "and prints the job's result.\n\n"
        "Job options (they build the job's JSON):\n"
        "  --action A        imagine, blend, describe, shorten, action or "
        "modal\n"
        "  --prompt P        body.prompt\n"
        "  --body JSON       the body object to start from; the other "
        "options\n"
        "                    set their fields in it\n"
        "  --task-id ID      body.taskId (action, modal)\n"
        "  --custom-id CID   body.customId (action): a button's customId\n"
        "  --image FILE      repeatable; a data:image/...;base64 URL in\n"
        "                    body.base64Array (imagine, blend) or "
        "body.base64 (describe)\n"
        "  --mode M          fast, relax or turbo\n"
        "  --timeout-s N     deadline in seconds once a worker takes it\n"
        "  --meta JSON       any JSON, echoed in the result\n"
        "  --reply-to NAME   results go to <prefix>results:NAME\n"
        "  --id ID           the job id (default job-<unix ms>-<random "
        "hex>)\n"
        "  --stdin, -        read the whole job JSON from stdin instead; "
        "an id is\n"
        "                    generated and added if it has none\n"
        "  --force           push even an invalid job (to test the "
        "INVALID path)\n\n"
        "Where and how:\n"
        "  --queue Q         queue to push onto (default: the first of "
        "--queues)\n"
        "  --wait            wait for the job's result and print it: "
        "`field: value`\n"
        "                    lines, JSON fields indented; the id goes to "
        "stderr\n"
        "  --wait-timeout S  give up waiting after S seconds (default "
        "%d)\n"
        "  --json            with --wait: print the result as one JSON "
        "line, with\n"
        "                    task, buttons and meta decoded\n"
        "  --config FILE, --set KEY=VALUE and the setting flags below\n"
        "                    (--redis-url, --prefix, --queues...) as for "
        "`mjq worker`\n\n"
        "Exit codes: 0 pushed (with --wait: the result is SUCCESS), 1 the "
        "result is\nFAILURE, CANCEL, TIMEOUT, INVALID or DUPLICATE, 64 "
        "usage, 65 invalid job\n(nothing pushed), 66 unreadable --image or "
        "stdin, 69 Redis unreachable or\nfailing, %d bad configuration, "
        "124 no result within --wait-timeout.\n\n",
        WAIT_DEFAULT_S, MJQ_EXIT_CONFIG);
    config_usage(out);
}

static const struct value_flag *find_value_flag(const char *name)
{
    for (size_t i = 0; i < sizeof(value_flags) / sizeof(value_flags[0]); i++) {
        if (strcmp(value_flags[i].name, name) == 0)
            return &value_flags[i];
    }
    return NULL;
}

/* Boolean flags; returns 0, or -1 if name is not one. */
static int set_bool_flag(struct opts *o, const char *name)
{
    if (strcmp(name, "stdin") == 0)
        o->from_stdin = 1;
    else if (strcmp(name, "wait") == 0)
        o->wait = 1;
    else if (strcmp(name, "json") == 0)
        o->json_out = 1;
    else if (strcmp(name, "force") == 0)
        o->force = 1;
    else
        return -1;
    return 0;
}

/* Stores the value of a value flag. Returns 0 or -EX_USAGE. */
static int set_value_flag(struct opts *o, const struct value_flag *f,
                          const char *value)
{
    if (strcmp(f->name, "image") == 0) {
        if (o->nimages == MAX_IMAGES) {
            fprintf(stderr, "mjq enqueue: at most %d --image\n", MAX_IMAGES);
            return -EX_USAGE;
        }
        o->images[o->nimages++] = value;
        return 0;
    }
    *(const char **)((char *)o + f->off) = value;
    return 0;
}

/*
 * Parses enqueue's own flags into o. Anything else is a config flag and is
 * copied, with its value, into o->rest for worker_parse_args. Returns 0,
 * 1 after --help, or -EX_USAGE after printing why.
 */
static int parse_args(int argc, char **argv, struct opts *o)
{
    o->rest = xcalloc((size_t)argc + 1, sizeof(char *));
    o->rest[o->nrest++] = argv[0];
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *eq, *value;
        const struct value_flag *f;
        char name[64];

        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            usage(stdout);
            return 1;
        }
        if (strcmp(arg, "-") == 0) {
            o->from_stdin = 1;
            continue;
        }
        if (strncmp(arg, "--", 2) != 0) {
            fprintf(stderr,
                    "mjq enqueue: unexpected argument '%s' (see "
                    "--help)\n",
                    arg);
            return -EX_USAGE;
        }
        eq = strchr(arg, '=');
        snprintf(name, sizeof(name), "%.*s",
                 (int)(eq != NULL ? (size_t)(eq - arg - 2) : strlen(arg + 2)),
                 arg + 2);
        if (eq == NULL && set_bool_flag(o, name) == 0)
            continue;
        f = find_value_flag(name);
        if (f == NULL && strcmp(name, "config") != 0 &&
            strcmp(name, "set") != 0 && config_flag_key(name) == NULL) {
            fprintf(stderr, "mjq enqueue: unknown option --%s (see --help)\n",
                    name);
            return -EX_USAGE;
        }
        if (f == NULL) {
            /* A setting: worker_parse_args parses and checks them. */
            o->rest[o->nrest++] = argv[i];
            if (eq == NULL && i + 1 < argc)
                o->rest[o->nrest++] = argv[++i];
            continue;
        }
        value = eq != NULL ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (value == NULL) {
            fprintf(stderr, "mjq enqueue: --%s needs a value\n", name);
            return -EX_USAGE;
        }
        if (set_value_flag(o, f, value) < 0)
            return -EX_USAGE;
    }
    return 0;
}

/* Cross-flag checks once everything is parsed. Returns 0 or -EX_USAGE. */
static int check_args(const struct opts *o, long *wait_timeout_s)
{
    *wait_timeout_s = WAIT_DEFAULT_S;
    if (o->wait_timeout != NULL) {
        char *end;
        long v;

        errno = 0;
        v = strtol(o->wait_timeout, &end, 10);
        if (errno != 0 || end == o->wait_timeout || *end != '\0' || v <= 0 ||
            v > INT_MAX / 1000) {
            fprintf(stderr, "mjq enqueue: --wait-timeout: want whole "
                            "seconds > 0\n");
            return -EX_USAGE;
        }
        *wait_timeout_s = v;
    }
    if (o->json_out && !o->wait) {
        fprintf(stderr, "mjq enqueue: --json formats the result of --wait\n");
        return -EX_USAGE;
    }
    if (o->from_stdin && (o->action || o->prompt || o->body || o->task_id ||
                          o->custom_id || o->mode || o->timeout_s || o->meta ||
                          o->reply_to || o->id || o->nimages > 0)) {
        fprintf(stderr, "mjq enqueue: --stdin takes the whole job; the job "
                        "options (--action, --prompt...) cannot be added\n");
        return -EX_USAGE;
    }
    if (!o->from_stdin && o->action == NULL) {
        fprintf(stderr, "mjq enqueue: --action is required (or --stdin)\n");
        return -EX_USAGE;
    }
    if (o->queue != NULL && !job_id_valid(o->queue, strlen(o->queue))) {
        fprintf(stderr, "mjq enqueue: --queue: 1-128 characters of A-Z a-z "
                        "0-9 . _ : -\n");
        return -EX_USAGE;
    }
    return 0;
}

/* --- building the job ---------------------------------------------------- */

/* Generates "job-<unix ms>-<16 hex digits>" into buf. */
static void make_id(char *buf, size_t len)
{
    unsigned char rnd[8];
    uint64_t r = 0;

    if (getrandom(rnd, sizeof(rnd), 0) == (ssize_t)sizeof(rnd)) {
        for (size_t i = 0; i < sizeof(rnd); i++)
            r = r << 8 | rnd[i];
    } else {
        r = (uint64_t)clock_mono_ms() * 2654435761u ^ (uint64_t)getpid();
    }
    snprintf(buf, len, "job-%" PRId64 "-%016" PRIx64, clock_wall_ms(), r);
}

/*
 * Reads all of f into a new NUL-terminated buffer. max > 0 caps the size.
 * Returns 0, -EX_NOINPUT on a read error (errno kept) or -EX_DATAERR if
 * the input is larger than max.
 */
static int read_all(FILE *f, long max, char **out, size_t *len)
{
    size_t cap = 65536, n = 0;
    char *buf = xmalloc(cap + 1);

    for (;;) {
        /* fread comes back short only at end of file or on an error. */
        n += fread(buf + n, 1, cap - n, f);
        if (max > 0 && n > (size_t)max) {
            free(buf);
            return -EX_DATAERR;
        }
        if (n < cap)
            break;
        cap *= 2;
        buf = xrealloc(buf, cap + 1);
    }
    if (ferror(f)) {
        free(buf);
        return -EX_NOINPUT;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

/* The MIME type of an image, from its first bytes; PNG if unknown. */
static const char *image_mime(const unsigned char *p, size_t n)
{
    if (n >= 3 && memcmp(p, "\xff\xd8\xff", 3) == 0)
        return "image/jpeg";
    if (n >= 6 && (memcmp(p, "GIF87a", 6) == 0 || memcmp(p, "GIF89a", 6) == 0))
        return "image/gif";
    if (n >= 12 && memcmp(p, "RIFF", 4) == 0 && memcmp(p + 8, "WEBP", 4) == 0)
        return "image/webp";
    return "image/png"; /* what MJ APIs assume for raw base64 */
}

/* Returns a new "data:<mime>;base64,<data>" string for len bytes at p. */
static char *data_url(const unsigned char *p, size_t len)
{
    static const char b64[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char head[48];
    size_t hlen, i;
    char *out, *o;

    hlen = (size_t)snprintf(head, sizeof(head), "data:%s;base64,",
                            image_mime(p, len));
    out = xmalloc(hlen + (len + 2) / 3 * 4 + 1);
    memcpy(out, head, hlen);
    o = out + hlen;
    for (i = 0; i + 2 < len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];

        *o++ = b64[v >> 18 & 63];
        *o++ = b64[v >> 12 & 63];
        *o++ = b64[v >> 6 & 63];
        *o++ = b64[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t)p[i] << 16;

        if (i + 1 < len)
            v |= (uint32_t)p[i + 1] << 8;
        *o++ = b64[v >> 18 & 63];
        *o++ = b64[v >> 12 & 63];
        *o++ = i + 1 < len ? b64[v >> 6 & 63] : '=';
        *o++ = '=';
    }
    *o = '\0';
    return out;
}

/* Reads an image file into a new JSON data-URL string. */
static int load_image(const char *path, long max_bytes, json_t **out)
{
    FILE *f = fopen(path, "rbe");
    char *buf, *url;
    size_t len;
    int rc;

    if (f == NULL) {
        fprintf(stderr, "mjq enqueue: --image %s: %s\n", path, strerror(errno));
        return -EX_NOINPUT;
    }
    rc = read_all(f, max_bytes, &buf, &len);
    if (rc == -EX_NOINPUT)
        fprintf(stderr, "mjq enqueue: --image %s: %s\n", path, strerror(errno));
    else if (rc < 0)
        fprintf(stderr,
                "mjq enqueue: --image %s: larger than "
                "max_job_bytes (%ld)\n",
                path, max_bytes);
    fclose(f);
    if (rc < 0)
        return rc;
    url = data_url((const unsigned char *)buf, len);
    *out = json_string(url);
    free(url);
    free(buf);
    return 0;
}

/* body.base64Array (imagine, blend) or body.base64 (describe). */
static int add_images(json_t *body, int known, enum job_action act,
                      const struct opts *o, long max_bytes)
{
    json_t *arr = NULL, *img;
    int rc;

    if (o->nimages == 0)
        return 0;
    if (!known || (act != ACTION_IMAGINE && act != ACTION_BLEND &&
                   act != ACTION_DESCRIBE)) {
        fprintf(stderr, "mjq enqueue: --image is for imagine, blend and "
                        "describe\n");
        return -EX_USAGE;
    }
    if (act == ACTION_DESCRIBE && o->nimages > 1) {
        fprintf(stderr, "mjq enqueue: describe takes one --image\n");
        return -EX_USAGE;
    }
    if (act != ACTION_DESCRIBE) {
        arr = json_object_get(body, "base64Array");
        if (!json_is_array(arr)) {
            arr = json_array();
            json_object_set_new(body, "base64Array", arr);
        }
    }
    for (size_t i = 0; i < o->nimages; i++) {
        rc = load_image(o->images[i], max_bytes, &img);
        if (rc < 0)
            return rc;
        if (arr != NULL)
            json_array_append_new(arr, img);
        else
            json_object_set_new(body, "base64", img);
    }
    return 0;
}

/* Sets obj[key] to a string from a flag. Returns 0 or -EX_DATAERR. */
static int set_string(json_t *obj, const char *key, const char *value,
                      const char *flag)
{
    json_t *s;

    if (value == NULL)
        return 0;
    s = json_string(value);
    if (s == NULL) {
        fprintf(stderr, "mjq enqueue: --%s: not valid UTF-8\n", flag);
        return -EX_DATAERR;
    }
    json_object_set_new(obj, key, s);
    return 0;
}

/* Sets obj[key] to v (stolen); v NULL means its flag was already found
 * bad and reported. Returns 0 or -EX_DATAERR. */
static int set_value(json_t *obj, const char *key, json_t *v)
{
    if (v == NULL)
        return -EX_DATAERR;
    json_object_set_new(obj, key, v);
    return 0;
}

/* Parses a flag's JSON text: a new reference, or NULL after printing why. */
static json_t *parse_json_flag(const char *flag, const char *text)
{
    json_error_t jerr;
    json_t *v;

    v = json_loads(text, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
    if (v == NULL)
        fprintf(stderr, "mjq enqueue: --%s: not valid JSON: %s (column %d)\n",
                flag, jerr.text, jerr.column);
    return v;
}

/* Sets the fields of body that the action-specific flags name. */
static int fill_body(json_t *body, const struct opts *o, long max_bytes)
{
    enum job_action act = ACTION_IMAGINE;
    int known = job_action_parse(o->action, &act) == 0;
    int rc;

    if (o->task_id != NULL &&
        !(known && (act == ACTION_ACTION || act == ACTION_MODAL))) {
        fprintf(stderr, "mjq enqueue: --task-id is for action and modal\n");
        return -EX_USAGE;
    }
    if (o->custom_id != NULL && !(known && act == ACTION_ACTION)) {
        fprintf(stderr, "mjq enqueue: --custom-id is for action\n");
        return -EX_USAGE;
    }
    rc = set_string(body, "prompt", o->prompt, "prompt");
    if (rc == 0)
        rc = set_string(body, "taskId", o->task_id, "task-id");
    if (rc == 0)
        rc = set_string(body, "customId", o->custom_id, "custom-id");
    if (rc == 0)
        rc = add_images(body, known, act, o, max_bytes);
    return rc;
}

/* timeout_s as a new JSON number (an integer when it is one), or NULL
 * after printing why. */
static json_t *timeout_number(const char *text)
{
    char *end;
    long long i;
    double d;

    errno = 0;
    i = strtoll(text, &end, 10);
    if (errno == 0 && end != text && *end == '\0')
        return json_integer(i);
    errno = 0;
    d = strtod(text, &end);
    if (errno != 0 || end == text || *end != '\0' || !isfinite(d)) {
        fprintf(stderr, "mjq enqueue: --timeout-s: not a number\n");
        return NULL;
    }
    return json_real(d);
}

/* The body: --body (or {}) with the flags' fields set; new in *out. */
static int make_body(const struct opts *o, long max_bytes, json_t **out)
{
    json_t *body;
    int rc;

    body = o->body != NULL ? parse_json_flag("body", o->body) : json_object();
    if (body == NULL)
        return -EX_DATAERR;
    if (!json_is_object(body)) {
        fprintf(stderr, "mjq enqueue: --body: must be a JSON object\n");
        json_decref(body);
        return -EX_DATAERR;
    }
    rc = fill_body(body, o, max_bytes);
    if (rc < 0)
        json_decref(body);
    else
        *out = body;
    return rc;
}

/* Builds the job object from the flags: a new reference in *out. */
static int build_job(const struct opts *o, long max_bytes, json_t **out)
{
    json_t *job = json_object(), *body;
    char id[JOB_ID_MAX + 64];
    int rc;

    if (o->id == NULL)
        make_id(id, sizeof(id));
    rc = set_string(job, "id", o->id != NULL ? o->id : id, "id");
    if (rc == 0)
        rc = set_string(job, "action", o->action, "action");
    if (rc == 0)
        rc = make_body(o, max_bytes, &body);
    if (rc == 0)
        rc = set_value(job, "body", body);
    if (rc == 0)
        rc = set_string(job, "mode", o->mode, "mode");
    if (rc == 0 && o->timeout_s != NULL)
        rc = set_value(job, "timeout_s", timeout_number(o->timeout_s));
    if (rc == 0 && o->meta != NULL)
        rc = set_value(job, "meta", parse_json_flag("meta", o->meta));
    if (rc == 0)
        rc = set_string(job, "reply_to", o->reply_to, "reply-to");
    /* For the queue wait metric (docs/contract.md): when it was pushed. */
    if (rc == 0)
        json_object_set_new(job, "enqueued_ms", json_integer(clock_wall_ms()));
    if (rc < 0)
        json_decref(job);
    else
        *out = job;
    return rc;
}

static int payload_from_flags(const struct opts *o, long max_bytes,
                              struct payload *p)
{
    json_t *job;
    int rc = build_job(o, max_bytes, &job);

    if (rc < 0)
        return rc;
    p->text = json_dumps(job, JSON_COMPACT);
    json_decref(job);
    if (p->text == NULL)
        abort(); /* jansson fails only when out of memory */
    p->len = strlen(p->text);
    return 0;
}

/*
 * Takes the payload from stdin byte for byte, except that a JSON object
 * without "id" gets a generated one (and then "enqueued_ms" too, if it
 * has none, since it is rewritten anyway).
 */
static int payload_from_stdin(struct payload *p)
{
    char id[JOB_ID_MAX + 64];
    json_t *job;
    int rc = read_all(stdin, 0, &p->text, &p->len);

    if (rc < 0) {
        fprintf(stderr, "mjq enqueue: stdin: %s\n", strerror(errno));
        return rc;
    }
    job = json_loadb(p->text, p->len, 0, NULL);
    if (json_is_object(job) && json_object_get(job, "id") == NULL) {
        make_id(id, sizeof(id));
        json_object_set_new(job, "id", json_string(id));
        if (json_object_get(job, "enqueued_ms") == NULL)
            json_object_set_new(job, "enqueued_ms",
                                json_integer(clock_wall_ms()));
        free(p->text);
        p->text = json_dumps(job, JSON_COMPACT);
        if (p->text == NULL)
            abort(); /* jansson fails only when out of memory */
        p->len = strlen(p->text);
    }
    json_decref(job);
    return 0;
}

/*
 * Validates the payload as a worker will and records its id and reply_to.
 * An invalid job is refused (-EX_DATAERR) unless --force.
 */
static int validate(const struct opts *o, long max_bytes, struct payload *p)
{
    struct job_spec spec;
    struct job_error err;

    if (job_parse(p->text, p->len, max_bytes, &spec, &err) == 0) {
        snprintf(p->id, sizeof(p->id), "%s", spec.id);
        if (spec.reply_to != NULL)
            p->reply_to = xstrdup(spec.reply_to);
        job_spec_clear(&spec);
        return 0;
    }
    fprintf(stderr, "mjq enqueue: invalid job: %s: %s%s\n", err.field,
            err.reason, o->force ? " (pushed anyway: --force)" : "");
    snprintf(p->id, sizeof(p->id), "%s", err.id);
    return o->force ? 0 : -EX_DATAERR;
}

/* --- Redis --------------------------------------------------------------- */

/* cli.c's checks and connection, with this command's name. */
static redisReply *checked(redisContext *c, void *reply, const char *what)
{
    return cli_checked("mjq enqueue", c, reply, what);
}

static redisContext *redis_open(const struct config *cfg)
{
    return cli_redis_open("mjq enqueue", cfg, REDIS_TIMEOUT_S);
}

/* The id of the stream's newest entry, or "0-0". Returns 0 or -EX_*. */
static int last_entry_id(redisContext *c, const char *stream, char *id,
                         size_t len)
{
    redisReply *r = checked(
        c, redisCommand(c, "XREVRANGE %s + - COUNT 1", stream), "XREVRANGE");

    if (r == NULL)
        return -EX_UNAVAILABLE;
    snprintf(id, len, "0-0");
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
        r->element[0]->type == REDIS_REPLY_ARRAY &&
        r->element[0]->elements == 2 &&
        r->element[0]->element[0]->type == REDIS_REPLY_STRING)
        snprintf(id, len, "%s", r->element[0]->element[0]->str);
    freeReplyObject(r);
    return 0;
}

/* obj[key] as a string, "" when absent. */
static const char *field(const json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));

    return s != NULL ? s : "";
}

/*
 * Looks through one XREAD reply for the first entry whose "id" field is
 * id, advancing last (the id to read after). Returns a new object or NULL.
 */
static json_t *find_result(const redisReply *r, const char *id, char *last,
                           size_t len)
{
    const redisReply *entries;

    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
        r->element[0]->type != REDIS_REPLY_ARRAY ||
        r->element[0]->elements != 2)
        return NULL;
    entries = r->element[0]->element[1];
    for (size_t i = 0; i < entries->elements; i++) {
        const redisReply *e = entries->element[i], *kv;
        json_t *obj;

        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2)
            continue;
        snprintf(last, len, "%s", e->element[0]->str);
        kv = e->element[1];
        if (kv->type != REDIS_REPLY_ARRAY)
            continue;
        obj = cli_entry_object(kv);
        if (strcmp(field(obj, "id"), id) == 0)
            return obj;
        json_decref(obj);
    }
    return NULL;
}

/*
 * Follows stream from the entry after last until a result for id arrives
 * (a new object in *out) or timeout_s passes (-EXIT_WAIT_TIMEOUT).
 */
static int wait_result(redisContext *c, const char *stream, char *last,
                       size_t len, const char *id, long timeout_s, json_t **out)
{
    int64_t deadline = clock_mono_ms() + (int64_t)timeout_s * 1000;

    *out = NULL;
    while (*out == NULL) {
        int64_t left = deadline - clock_mono_ms();
        redisReply *r;

        if (left <= 0)
            return -EXIT_WAIT_TIMEOUT;
        r = checked(c,
                    redisCommand(c, "XREAD BLOCK %lld COUNT 100 STREAMS %s %s",
                                 (long long)(left < 1000 ? left : 1000), stream,
                                 last),
                    "XREAD");
        if (r == NULL)
            return -EX_UNAVAILABLE;
        *out = find_result(r, id, last, len);
        freeReplyObject(r);
    }
    return 0;
}

/* --- output -------------------------------------------------------------- */

static int is_json_field(const char *key)
{
    for (size_t i = 0; i < sizeof(json_fields) / sizeof(json_fields[0]); i++) {
        if (strcmp(key, json_fields[i]) == 0)
            return 1;
    }
    return 0;
}

/* Decodes the JSON-text fields of a result in place (kept if not JSON). */
static void decode_json_fields(json_t *result)
{
    const char *key;
    json_t *value;

    json_object_foreach(result, key, value)
    {
        json_t *decoded;

        if (!is_json_field(key))
            continue;
        decoded = json_loads(json_string_value(value), JSON_DECODE_ANY, NULL);
        if (decoded != NULL)
            json_object_set_new(result, key, decoded);
    }
}

/* Prints a (decoded) result: one line of JSON, or `field: value` lines. */
static void print_result(json_t *result, int json_out)
{
    const char *key;
    json_t *value;

    decode_json_fields(result);
    if (json_out) {
        json_dumpf(result, stdout, JSON_COMPACT);
        putchar('\n');
        return;
    }
    json_object_foreach(result, key, value)
    {
        char *text;

        if (json_is_string(value)) {
            printf("%s: %s\n", key, json_string_value(value));
            continue;
        }
        text = json_dumps(value, JSON_INDENT(2) | JSON_ENCODE_ANY);
        printf("%s: %s\n", key, text != NULL ? text : "");
        free(text);
    }
}

/* --- the command --------------------------------------------------------- */

/*
 * Pushes p onto the queue and, with --wait, waits for and prints its
 * result. Returns 0 or a negative exit code.
 */
static int push(redisContext *c, const struct config *cfg, const struct opts *o,
                long wait_timeout_s, const struct payload *p)
{
    const char *queue = o->queue != NULL ? o->queue : cfg->queues[0];
    char qkey[KEYS_MAX], rkey[KEYS_MAX], last[64];
    json_t *result = NULL;
    redisReply *r;
    int rc;

    if (keys_queue(qkey, sizeof(qkey), cfg->prefix, queue) == NULL ||
        keys_results(rkey, sizeof(rkey), cfg->prefix, p->reply_to) == NULL) {
        fprintf(stderr, "mjq enqueue: key name too long\n");
        return -EX_USAGE;
    }
    /* Remember where the stream ends before pushing, so the result,
     * however fast it comes, is after it. */
    rc = o->wait ? last_entry_id(c, rkey, last, sizeof(last)) : 0;
    if (rc < 0)
        return rc;
    r = checked(c, redisCommand(c, "LPUSH %s %b", qkey, p->text, p->len),
                "LPUSH");
    if (r == NULL)
        return -EX_UNAVAILABLE;
    freeReplyObject(r);
    if (!o->wait) {
        printf("%s\n", p->id);
        return 0;
    }
    fprintf(stderr,
            "mjq enqueue: pushed %s onto %s; waiting up to %lds for "
            "its result on %s\n",
            p->id, qkey, wait_timeout_s, rkey);
    rc = wait_result(c, rkey, last, sizeof(last), p->id, wait_timeout_s,
                     &result);
    if (rc == -EXIT_WAIT_TIMEOUT)
        fprintf(stderr, "mjq enqueue: no result for %s within %lds\n", p->id,
                wait_timeout_s);
    if (rc < 0)
        return rc;
    rc =
        strcmp(field(result, "status"), "SUCCESS") == 0 ? 0 : -EXIT_NOT_SUCCESS;
    print_result(result, o->json_out);
    json_decref(result);
    return rc;
}

static int load_config(struct config *cfg, const char *path, char **flags,
                       size_t nflags)
{
    struct config_error err;
    char line[1024];

    if (config_load(cfg, path, flags, nflags, &err) == 0)
        return 0;
    config_error_format(&err, line, sizeof(line));
    fprintf(stderr, "mjq enqueue: %s\n", line);
    return -MJQ_EXIT_CONFIG;
}

int enqueue_main(int argc, char **argv)
{
    struct opts o;
    struct config cfg;
    struct payload p;
    redisContext *c = NULL;
    const char *path = NULL;
    char **flags = NULL;
    size_t nflags = 0;
    long wait_timeout_s = WAIT_DEFAULT_S;
    int rc;

    memset(&o, 0, sizeof(o));
    memset(&cfg, 0, sizeof(cfg));
    memset(&p, 0, sizeof(p));
    rc = parse_args(argc, argv, &o);
    if (rc == 0)
        rc = check_args(&o, &wait_timeout_s);
    if (rc == 0 &&
        worker_parse_args(o.nrest, o.rest, usage, &path, &flags, &nflags) < 0)
        rc = -EX_USAGE;
    if (rc != 0)
        goto out;
    rc = load_config(&cfg, path, flags, nflags);
    if (rc == 0)
        rc = o.from_stdin ? payload_from_stdin(&p)
                          : payload_from_flags(&o, cfg.max_job_bytes, &p);
    if (rc == 0)
        rc = validate(&o, cfg.max_job_bytes, &p);
    if (rc == 0) {
        c = redis_open(&cfg);
        rc =
            c != NULL ? push(c, &cfg, &o, wait_timeout_s, &p) : -EX_UNAVAILABLE;
    }
out:
    if (c != NULL)
        redisFree(c);
    free(p.text);
    free(p.reply_to);
    if (flags != NULL)
        worker_free_args(flags, nflags);
    free(o.rest);
    config_free(&cfg);
    return rc > 0 ? 0 : -rc; /* rc 1: --help was printed */
}
