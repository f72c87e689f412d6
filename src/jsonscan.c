#include "jsonscan.h"

#include <string.h>

/* Skips white space; returns the new position. */
static size_t skip_ws(const char *s, size_t i, size_t len)
{
    while (i < len &&
           (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    return i;
}

/* Skips a string starting at its opening quote; returns the position
 * after the closing quote. */
static size_t skip_string(const char *s, size_t i, size_t len)
{
    for (i++; i < len; i++) {
        if (s[i] == '\\')
            i++;
        else if (s[i] == '"')
            return i + 1;
    }
    return len;
}

/* Skips one value of valid JSON; returns the position after it. */
static size_t skip_value(const char *s, size_t i, size_t len)
{
    int depth = 0;

    i = skip_ws(s, i, len);
    do {
        if (i >= len)
            return len;
        if (s[i] == '"') {
            i = skip_string(s, i, len);
            continue;
        }
        if (s[i] == '{' || s[i] == '[')
            depth++;
        else if (s[i] == '}' || s[i] == ']')
            depth--;
        else if (depth == 0 && (s[i] == ',' || s[i] == ' ' || s[i] == '\n' ||
                                s[i] == '\r' || s[i] == '\t'))
            return i; /* end of a scalar */
        i++;
    } while (depth > 0 || (i < len && s[i - 1] != '}' && s[i - 1] != ']' &&
                           s[i] != ',' && s[i] != '}' && s[i] != ']'));
    return i;
}

int jsonscan_member(const char *json, size_t len, const char *key, size_t *off,
                    size_t *vlen)
{
    size_t klen = strlen(key);
    size_t i = skip_ws(json, 0, len);

    if (i >= len || json[i] != '{')
        return -1;
    i++;
    for (;;) {
        size_t name, end;

        i = skip_ws(json, i, len);
        if (i >= len || json[i] != '"')
            return -1;
        name = i + 1;
        end = skip_string(json, i, len);
        i = skip_ws(json, end, len);
        if (i >= len || json[i] != ':')
            return -1;
        i = skip_ws(json, i + 1, len);
        if (end - 1 - name == klen && memcmp(json + name, key, klen) == 0) {
            *off = i;
            *vlen = skip_value(json, i, len) - i;
            return 0;
        }
        i = skip_ws(json, skip_value(json, i, len), len);
        if (i >= len || json[i] != ',')
            return -1;
        i++;
    }
}

int jsonscan_element(const char *json, size_t len, size_t *pos, size_t *off,
                     size_t *vlen)
{
    size_t i = skip_ws(json, *pos, len);

    if (*pos == 0) {
        if (i >= len || json[i] != '[')
            return -1;
        i = skip_ws(json, i + 1, len);
    } else {
        if (i >= len || json[i] == ']')
            return 1;
        if (json[i] != ',')
            return -1;
        i = skip_ws(json, i + 1, len);
    }
    if (i >= len)
        return -1;
    if (json[i] == ']') {
        *pos = len;
        return 1;
    }
    *off = i;
    *vlen = skip_value(json, i, len) - i;
    *pos = i + *vlen;
    return 0;
}

/* The validator: a recursive descent over the grammar, depth-bounded. */
struct vstate {
    const unsigned char *s;
    size_t len, i;
    int depth;
};

#define VALID_MAX_DEPTH 256

static void vws(struct vstate *v)
{
    while (v->i < v->len && (v->s[v->i] == ' ' || v->s[v->i] == '\t' ||
                             v->s[v->i] == '\n' || v->s[v->i] == '\r'))
        v->i++;
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Length of the UTF-8 sequence starting at s[i], 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t i, size_t len)
{
    unsigned char c = s[i];
    size_t n;
    unsigned long cp;

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (i + n > len)
        return 0;
    for (size_t k = 1; k < n; k++) {
        if ((s[i + k] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i + k] & 0x3f);
    }
    /* Overlong forms, surrogates, beyond U+10FFFF. */
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
        (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
        return 0;
    return n;
}

static int vstring(struct vstate *v)
{
    v->i++; /* opening quote */
    while (v->i < v->len) {
        unsigned char c = v->s[v->i];

        if (c == '"') {
            v->i++;
            return 0;
        }
        if (c < 0x20)
            return -1;
        if (c == '\\') {
            if (v->i + 1 >= v->len)
                return -1;
            c = v->s[v->i + 1];
            if (c == 'u') {
                if (v->i + 6 > v->len)
                    return -1;
                for (size_t k = 2; k < 6; k++)
                    if (hexval(v->s[v->i + k]) < 0)
                        return -1;
                v->i += 6;
                continue;
            }
            if (strchr("\"\\/bfnrt", c) == NULL || c == '\0')
                return -1;
            v->i += 2;
            continue;
        }
        {
            size_t n = utf8_len(v->s, v->i, v->len);

            if (n == 0)
                return -1;
            v->i += n;
        }
    }
    return -1;
}

static int digits(struct vstate *v)
{
    size_t start = v->i;

    while (v->i < v->len && v->s[v->i] >= '0' && v->s[v->i] <= '9')
        v->i++;
    return v->i > start ? 0 : -1;
}

static int vnumber(struct vstate *v)
{
    if (v->s[v->i] == '-')
        v->i++;
    if (v->i >= v->len)
        return -1;
    if (v->s[v->i] == '0')
        v->i++;
    else if (digits(v) != 0)
        return -1;
    if (v->i < v->len && v->s[v->i] == '.') {
        v->i++;
        if (digits(v) != 0)
            return -1;
    }
    if (v->i < v->len && (v->s[v->i] == 'e' || v->s[v->i] == 'E')) {
        v->i++;
        if (v->i < v->len && (v->s[v->i] == '+' || v->s[v->i] == '-'))
            v->i++;
        if (digits(v) != 0)
            return -1;
    }
    return 0;
}

static int vliteral(struct vstate *v, const char *word)
{
    size_t n = strlen(word);

    if (v->i + n > v->len || memcmp(v->s + v->i, word, n) != 0)
        return -1;
    v->i += n;
    return 0;
}

static int vvalue(struct vstate *v);

static int vcontainer(struct vstate *v, unsigned char close)
{
    if (++v->depth > VALID_MAX_DEPTH)
        return -1;
    v->i++; /* opening bracket */
    vws(v);
    if (v->i < v->len && v->s[v->i] == close) {
        v->i++;
        v->depth--;
        return 0;
    }
    for (;;) {
        if (close == '}') {
            if (v->i >= v->len || v->s[v->i] != '"' || vstring(v) != 0)
                return -1;
            vws(v);
            if (v->i >= v->len || v->s[v->i] != ':')
                return -1;
            v->i++;
        }
        if (vvalue(v) != 0)
            return -1;
        vws(v);
        if (v->i >= v->len)
            return -1;
        if (v->s[v->i] == close) {
            v->i++;
            v->depth--;
            return 0;
        }
        if (v->s[v->i] != ',')
            return -1;
        v->i++;
        vws(v);
    }
}

static int vvalue(struct vstate *v)
{
    vws(v);
    if (v->i >= v->len)
        return -1;
    switch (v->s[v->i]) {
    case '{':
        return vcontainer(v, '}');
    case '[':
        return vcontainer(v, ']');
    case '"':
        return vstring(v);
    case 't':
        return vliteral(v, "true");
    case 'f':
        return vliteral(v, "false");
    case 'n':
        return vliteral(v, "null");
    default:
        if (v->s[v->i] == '-' || (v->s[v->i] >= '0' && v->s[v->i] <= '9'))
            return vnumber(v);
        return -1;
    }
}

int jsonscan_valid(const char *json, size_t len)
{
    struct vstate v = {(const unsigned char *)json, len, 0, 0};

    if (vvalue(&v) != 0)
        return -1;
    vws(&v);
    return v.i == len ? 0 : -1;
}

/* Appends code point cp as UTF-8 if it fits. */
static size_t put_utf8(char *out, size_t n, size_t size, unsigned long cp)
{
    unsigned char b[4];
    size_t k;

    if (cp < 0x80) {
        b[0] = (unsigned char)cp;
        k = 1;
    } else if (cp < 0x800) {
        b[0] = (unsigned char)(0xc0 | (cp >> 6));
        b[1] = (unsigned char)(0x80 | (cp & 0x3f));
        k = 2;
    } else if (cp < 0x10000) {
        b[0] = (unsigned char)(0xe0 | (cp >> 12));
        b[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
        b[2] = (unsigned char)(0x80 | (cp & 0x3f));
        k = 3;
    } else {
        b[0] = (unsigned char)(0xf0 | (cp >> 18));
        b[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
        b[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
        b[3] = (unsigned char)(0x80 | (cp & 0x3f));
        k = 4;
    }
    if (n + k >= size)
        return n; /* truncate at a character boundary */
    memcpy(out + n, b, k);
    return n + k;
}

static unsigned long hex4(const char *s)
{
    unsigned long v = 0;

    for (int k = 0; k < 4; k++)
        v = (v << 4) | (unsigned long)hexval((unsigned char)s[k]);
    return v;
}

int jsonscan_string(const char *json, size_t len, char *out, size_t size)
{
    size_t i = 1, n = 0;

    if (size == 0 || len < 2 || json[0] != '"' || json[len - 1] != '"')
        return -1;
    while (i < len - 1) {
        unsigned char c = (unsigned char)json[i];

        if (c != '\\') {
            if (n + 1 < size)
                out[n++] = (char)c;
            i++;
            continue;
        }
        if (i + 1 >= len - 1)
            return -1;
        c = (unsigned char)json[i + 1];
        if (c == 'u') {
            unsigned long cp;

            if (i + 6 > len - 1)
                return -1;
            for (int k = 2; k < 6; k++)
                if (hexval((unsigned char)json[i + k]) < 0)
                    return -1;
            cp = hex4(json + i + 2);
            i += 6;
            if (cp >= 0xd800 && cp <= 0xdbff && i + 6 <= len - 1 &&
                json[i] == '\\' && json[i + 1] == 'u') {
                unsigned long lo = hex4(json + i + 2);

                if (lo >= 0xdc00 && lo <= 0xdfff) {
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                    i += 6;
                }
            }
            if (cp >= 0xd800 && cp <= 0xdfff)
                cp = 0xfffd; /* a lone surrogate */
            n = put_utf8(out, n, size, cp);
            continue;
        }
        switch (c) {
        case 'b':
            c = '\b';
            break;
        case 'f':
            c = '\f';
            break;
        case 'n':
            c = '\n';
            break;
        case 'r':
            c = '\r';
            break;
        case 't':
            c = '\t';
            break;
        case '"':
        case '\\':
        case '/':
            break;
        default:
            return -1;
        }
        if (n + 1 < size)
            out[n++] = (char)c;
        i += 2;
    }
    /* Never leave a multi-byte character cut in two at the end. */
    if (n > 0 && ((unsigned char)out[n - 1] & 0x80) != 0) {
        size_t p = n - 1;
        size_t want;

        while (p > 0 && ((unsigned char)out[p] & 0xc0) == 0x80)
            p--;
        want = utf8_len((const unsigned char *)out, p, n);
        if (want == 0)
            n = p;
    }
    out[n] = '\0';
    return 0;
}
