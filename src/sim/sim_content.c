#include "sim_content.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "sim_json.h"

#define CDN "https://cdn.mjq-sim.invalid/attachments/"

/* Keycap digits 1..5 as Discord renders them ("1️⃣"). */
static const char *const keycaps[] = {
    "1\xef\xb8\x8f\xe2\x83\xa3", "2\xef\xb8\x8f\xe2\x83\xa3",
    "3\xef\xb8\x8f\xe2\x83\xa3", "4\xef\xb8\x8f\xe2\x83\xa3",
    "5\xef\xb8\x8f\xe2\x83\xa3",
};

static const char *const subjects[] = {
    "a red fox",      "an old lighthouse",  "a paper boat",    "a sleeping cat",
    "a glass teapot", "a mountain village", "a vintage robot", "a koi pond",
};
static const char *const settings[] = {
    "in morning fog",       "under neon rain",     "on a quiet beach",
    "in a sunflower field", "at golden hour",      "in a snowy forest",
    "on a city rooftop",    "inside a greenhouse",
};
static const char *const styles[] = {
    "watercolor illustration", "cinematic photography", "isometric 3d render",
    "ukiyo-e woodblock print", "oil painting",          "soft pastel drawing",
    "claymation style",        "minimalist vector art",
};

static uint64_t mix(uint64_t z)
{
    z += UINT64_C(0x9e3779b97f4a7c15);
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* Appends n lowercase hex digits of v (most significant first). */
static char *hex(char *p, uint64_t v, int n)
{
    static const char digits[] = "0123456789abcdef";

    for (int i = n - 1; i >= 0; i--)
        p[i] = digits[v & 15], v >>= 4;
    return p + n;
}

void sim_content_hash(uint64_t id, char out[SIM_HASH_LEN + 1])
{
    uint64_t a = mix(id);
    uint64_t b = mix(id ^ UINT64_C(0x5bd1e9955bd1e995));
    char *p = out;

    /* 8-4-4-4-12, version 4 and variant bits set like a real UUID. */
    p = hex(p, a >> 32, 8);
    *p++ = '-';
    p = hex(p, (a >> 16) & 0xffff, 4);
    *p++ = '-';
    p = hex(p, (a & 0x0fff) | 0x4000, 4);
    *p++ = '-';
    p = hex(p, ((b >> 48) & 0x3fff) | 0x8000, 4);
    *p++ = '-';
    p = hex(p, b & UINT64_C(0xffffffffffff), 12);
    *p = '\0';
}

/*
 * out = head [n] [::hash] tail, where n < 0 is left out and so is the
 * "::" before the hash when there is no n. Replaces snprintf on the fetch
 * path. All parts are short literals or the 36-byte hash.
 */
static void compose(char *out, const char *head, int n, const char *hash,
                    const char *tail)
{
    size_t len = strlen(head);

    memcpy(out, head, len);
    if (n >= 0) {
        char tmp[4];
        int k = 0;

        do {
            tmp[k++] = (char)('0' + n % 10);
            n /= 10;
        } while (n > 0 && k < 3);
        while (k > 0)
            out[len++] = tmp[--k];
        if (hash != NULL) {
            memcpy(out + len, "::", 2);
            len += 2;
        }
    }
    if (hash != NULL) {
        memcpy(out + len, hash, SIM_HASH_LEN);
        len += SIM_HASH_LEN;
    }
    memcpy(out + len, tail, strlen(tail) + 1);
}

static bool has_grid(enum sim_action a)
{
    switch (a) {
    case SIM_ACTION_IMAGINE:
    case SIM_ACTION_BLEND:
    case SIM_ACTION_VARIATION:
    case SIM_ACTION_REROLL:
    case SIM_ACTION_ZOOM:
    case SIM_ACTION_INPAINT:
        return true;
    default:
        return false;
    }
}

static void button(struct sim_button *b, struct sim_button_action *act,
                   enum sim_button_kind kind, enum sim_action action, int index,
                   const char *emoji, const char *label)
{
    b->emoji = emoji;
    b->label = label;
    b->style = 2;
    act->kind = kind;
    act->action = action;
    act->index = index;
}

/* Fills both the buttons and what each does; returns the count. */
static size_t gen(const struct sim_task *t, struct sim_button *out,
                  struct sim_button_action *acts)
{
    static const char *const u_labels[] = {"U1", "U2", "U3", "U4"};
    static const char *const v_labels[] = {"V1", "V2", "V3", "V4"};
    static const char *const n_labels[] = {"1", "2", "3", "4", "5"};
    char h[SIM_HASH_LEN + 1];
    size_t n = 0;

    sim_content_hash(t->id, h);
    if (has_grid((enum sim_action)t->action)) {
        for (int i = 1; i <= 4; i++, n++) {
            compose(out[n].custom_id, "MJ::JOB::upsample::", i, h, "");
            button(&out[n], &acts[n], SIM_BUTTON_JOB, SIM_ACTION_UPSCALE, i, "",
                   u_labels[i - 1]);
        }
        compose(out[n].custom_id, "MJ::JOB::reroll::", 0, h, "::SOLO");
        button(&out[n], &acts[n], SIM_BUTTON_JOB, SIM_ACTION_REROLL, 0,
               "\xf0\x9f\x94\x84", "");
        n++;
        for (int i = 1; i <= 4; i++, n++) {
            compose(out[n].custom_id, "MJ::JOB::variation::", i, h, "");
            button(&out[n], &acts[n], SIM_BUTTON_JOB, SIM_ACTION_VARIATION, i,
                   "", v_labels[i - 1]);
        }
        return n;
    }
    switch ((enum sim_action)t->action) {
    case SIM_ACTION_UPSCALE:
        compose(out[n].custom_id, "MJ::JOB::high_variation::", 1, h, "::SOLO");
        button(&out[n], &acts[n], SIM_BUTTON_JOB, SIM_ACTION_VARIATION, 1,
               "\xf0\x9f\xaa\x84", "Vary (Strong)");
        n++;
        compose(out[n].custom_id, "MJ::JOB::low_variation::", 1, h, "::SOLO");
        button(&out[n], &acts[n], SIM_BUTTON_JOB, SIM_ACTION_VARIATION, 1,
               "\xf0\x9f\xaa\x84", "Vary (Subtle)");
        n++;
        compose(out[n].custom_id, "MJ::Outpaint::50::", 1, h, "::SOLO");
        button(&out[n], &acts[n], SIM_BUTTON_JOB, SIM_ACTION_ZOOM, 50,
               "\xf0\x9f\x94\x8d", "Zoom Out 2x");
        n++;
        compose(out[n].custom_id, "MJ::Outpaint::75::", 1, h, "::SOLO");
        button(&out[n], &acts[n], SIM_BUTTON_JOB, SIM_ACTION_ZOOM, 75,
               "\xf0\x9f\x94\x8d", "Zoom Out 1.5x");
        n++;
        compose(out[n].custom_id, "MJ::CustomZoom::", -1, h, "");
        button(&out[n], &acts[n], SIM_BUTTON_MODAL, SIM_ACTION_ZOOM, 0,
               "\xf0\x9f\x94\x8d", "Custom Zoom");
        n++;
        compose(out[n].custom_id, "MJ::Inpaint::", 1, h, "::SOLO");
        button(&out[n], &acts[n], SIM_BUTTON_MODAL, SIM_ACTION_INPAINT, 0,
               "\xf0\x9f\x96\x8c\xef\xb8\x8f", "Vary (Region)");
        n++;
        return n;
    case SIM_ACTION_DESCRIBE:
        for (int i = 1; i <= 4; i++, n++) {
            compose(out[n].custom_id, "MJ::Job::PicReader::", i, NULL, "");
            button(&out[n], &acts[n], SIM_BUTTON_PIC_READER, SIM_ACTION_IMAGINE,
                   i, "", n_labels[i - 1]);
        }
        return n;
    case SIM_ACTION_SHORTEN:
        for (int i = 1; i <= 5; i++, n++) {
            compose(out[n].custom_id, "MJ::Job::PromptAnalyzer::", i, NULL, "");
            button(&out[n], &acts[n], SIM_BUTTON_PROMPT_ANALYZER,
                   SIM_ACTION_IMAGINE, i, "", n_labels[i - 1]);
        }
        return n;
    default:
        return 0;
    }
}

size_t sim_content_buttons(const struct sim_task *t, struct sim_button *out)
{
    struct sim_button_action acts[SIM_MAX_BUTTONS];

    return gen(t, out, acts);
}

int sim_content_action_of(const struct sim_task *t, const char *custom_id,
                          struct sim_button_action *out)
{
    struct sim_button buttons[SIM_MAX_BUTTONS];
    struct sim_button_action acts[SIM_MAX_BUTTONS];
    size_t n = gen(t, buttons, acts);

    for (size_t i = 0; i < n; i++) {
        if (strcmp(buttons[i].custom_id, custom_id) == 0) {
            *out = acts[i];
            return 0;
        }
    }
    return -1;
}

/* The n-th (1..4) describe suggestion for the task with this id. */
static void describe_prompt(struct sim_buf *b, uint64_t id, int n)
{
    uint64_t h = mix(id);

    sim_buf_printf(b, "%s %s, %s, highly detailed --ar 4:3",
                   subjects[(h + (uint64_t)n) % 8],
                   settings[((h >> 8) + 3 * (uint64_t)n) % 8],
                   styles[((h >> 16) + 5 * (uint64_t)n) % 8]);
}

#define MAX_TOKENS 8

struct tokens {
    const char *p[MAX_TOKENS];
    size_t len[MAX_TOKENS];
    int n;
};

/* Splits the prompt into words, up to the first --parameter. */
static void tokenize(const char *s, struct tokens *tk)
{
    tk->n = 0;
    while (*s != '\0' && tk->n < MAX_TOKENS) {
        size_t len = 0;

        while (*s != '\0' && (isspace((unsigned char)*s) || *s == ','))
            s++;
        if (*s == '\0' || (s[0] == '-' && s[1] == '-'))
            break;
        while (s[len] != '\0' && !isspace((unsigned char)s[len]) &&
               s[len] != ',')
            len++;
        tk->p[tk->n] = s;
        tk->len[tk->n] = len;
        tk->n++;
        s += len;
    }
    if (tk->n == 0) {
        tk->p[0] = "image";
        tk->len[0] = 5;
        tk->n = 1;
    }
}

/* The n-th (1..5) shortened prompt: fewer words as n grows. */
static void shorten_prompt(struct sim_buf *b, const struct tokens *tk, int n)
{
    int keep = tk->n - (n - 1);

    if (keep < 1)
        keep = 1;
    for (int i = 0; i < keep; i++) {
        if (i > 0)
            sim_buf_addc(b, ' ');
        sim_buf_add(b, tk->p[i], tk->len[i]);
    }
}

char *sim_content_child_prompt(const struct sim_task *parent,
                               const struct sim_button_action *a)
{
    struct sim_buf b;
    struct tokens tk;

    sim_buf_init(&b);
    switch (a->kind) {
    case SIM_BUTTON_PIC_READER:
        describe_prompt(&b, parent->id, a->index);
        break;
    case SIM_BUTTON_PROMPT_ANALYZER:
        tokenize(parent->prompt, &tk);
        shorten_prompt(&b, &tk, a->index);
        break;
    default:
        sim_buf_adds(&b, parent->prompt);
        break;
    }
    return sim_buf_detach(&b);
}

char *sim_content_final_prompt(const struct sim_task *t)
{
    struct sim_buf b;
    struct tokens tk;

    sim_buf_init(&b);
    switch ((enum sim_action)t->action) {
    case SIM_ACTION_DESCRIBE:
        for (int i = 1; i <= 4; i++) {
            if (i > 1)
                sim_buf_adds(&b, "\n\n");
            sim_buf_adds(&b, keycaps[i - 1]);
            sim_buf_addc(&b, ' ');
            describe_prompt(&b, t->id, i);
        }
        break;
    case SIM_ACTION_SHORTEN:
        tokenize(t->prompt, &tk);
        sim_buf_adds(&b, "**Important tokens**\n");
        for (int i = 0; i < tk.n && i < 5; i++) {
            if (i > 0)
                sim_buf_adds(&b, ", ");
            sim_buf_add(&b, tk.p[i], tk.len[i]);
        }
        sim_buf_adds(&b, "\n\n**Shortened prompts**\n");
        for (int i = 1; i <= 5; i++) {
            if (i > 1)
                sim_buf_adds(&b, "\n\n");
            sim_buf_adds(&b, keycaps[i - 1]);
            sim_buf_addc(&b, ' ');
            shorten_prompt(&b, &tk, i);
        }
        break;
    default:
        sim_buf_adds(&b, t->prompt);
        break;
    }
    return sim_buf_detach(&b);
}

size_t sim_content_image_url(const struct sim_task *t,
                             const struct sim_snap *snap, char *out,
                             size_t size)
{
    char id[24];
    char file[32];
    uint64_t h1 = mix(t->id ^ UINT64_C(0x1234567)), h2 = mix(h1);
    uint64_t h3 = mix(h2), h4 = mix(h3);
    int64_t is;
    int n;

    out[0] = '\0';
    if (snap->status == SIM_STATUS_SUCCESS) {
        if (t->action == SIM_ACTION_SHORTEN)
            return 0;
        if (t->action == SIM_ACTION_UPSCALE)
            snprintf(file, sizeof(file), "upscale_%d.png", t->index);
        else if (t->action == SIM_ACTION_DESCRIBE)
            snprintf(file, sizeof(file), "describe.png");
        else
            snprintf(file, sizeof(file), "grid_0.png");
        is = snap->finish_ms / 1000;
    } else if (snap->status == SIM_STATUS_IN_PROGRESS && snap->progress > 0 &&
               t->action != SIM_ACTION_SHORTEN &&
               t->action != SIM_ACTION_DESCRIBE) {
        snprintf(file, sizeof(file), "progress_%d.webp", snap->progress);
        is = snap->start_ms / 1000;
    } else {
        return 0;
    }
    sim_id_format(t->id, id, sizeof(id));
    n = snprintf(out, size,
                 CDN "%s/%s?ex=%08" PRIx64 "&is=%08" PRIx64 "&hm=%016" PRIx64
                     "%016" PRIx64 "%016" PRIx64 "%016" PRIx64 "&",
                 id, file, (uint64_t)(is + 86400), (uint64_t)is, h1, h2, h3,
                 h4);
    if (n < 0)
        return 0;
    return (size_t)n < size ? (size_t)n : size - 1;
}
