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
