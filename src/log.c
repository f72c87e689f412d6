#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum log_level log_threshold = LOG_LEVEL_INFO;
static enum log_format log_fmt = LOG_FORMAT_TEXT;
static char log_process[64] = "mjq";
static char log_worker[129] = ""; /* "" when not a worker */

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_setup(enum log_level level, enum log_format format,
               const char *process)
{
    log_threshold = level;
    log_fmt = format;
    if (process != NULL)
        snprintf(log_process, sizeof(log_process), "%s", process);
}

void log_set_worker(const char *worker)
{
    snprintf(log_worker, sizeof(log_worker), "%s", worker);
}

int log_level_parse(const char *s, enum log_level *out)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    return -1;
}

int log_format_parse(const char *s, enum log_format *out)
{
    if (strcmp(s, "text") == 0)
        *out = LOG_FORMAT_TEXT;
    else if (strcmp(s, "json") == 0)
        *out = LOG_FORMAT_JSON;
    else
        return -1;
    return 0;
}

/* Appends s to buf as the inside of a JSON string. Returns the new length. */
static size_t json_escape(char *buf, size_t len, size_t cap, const char *s)
{
    for (; *s != '\0' && len + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;

        if (c == '"' || c == '\\') {
            buf[len++] = '\\';
            buf[len++] = (char)c;
        } else if (c < 0x20) {
            len += (size_t)snprintf(buf + len, cap - len, "\\u%04x", c);
        } else {
            buf[len++] = (char)c;
        }
    }
    buf[len] = '\0';
    return len;
}

static size_t append(char *buf, size_t len, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static size_t append(char *buf, size_t len, size_t cap, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (len >= cap)
        return len;
    va_start(ap, fmt);
    n = vsnprintf(buf + len, cap - len, fmt, ap);
    va_end(ap);
    if (n < 0)
        return len;
    return len + (size_t)n >= cap ? cap - 1 : len + (size_t)n;
}

void log_write(enum log_level level, const char *job, const char *task,
               int errnum, const char *file, int line, const char *func,
               const char *fmt, ...)
{
    char msg[2048], out[4096], ts[32];
    struct timespec now;
    struct tm tm;
    size_t len = 0;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (errnum != 0) {
        size_t n = strlen(msg);
        snprintf(msg + n, sizeof(msg) - n, ": %s", strerror(errnum));
    }

    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);

    if (log_fmt == LOG_FORMAT_JSON) {
        len = append(out, len, sizeof(out),
                     "{\"ts\":\"%s.%03ldZ\",\"level\":\"%s\",\"process\":\"",
                     ts, now.tv_nsec / 1000000, level_names[level]);
        len = json_escape(out, len, sizeof(out), log_process);
        len = append(out, len, sizeof(out), "\"");
        if (log_worker[0] != '\0') {
            len = append(out, len, sizeof(out), ",\"worker\":\"");
            len = json_escape(out, len, sizeof(out), log_worker);
            len = append(out, len, sizeof(out), "\"");
        }
        if (job != NULL) {
            len = append(out, len, sizeof(out), ",\"job\":\"");
            len = json_escape(out, len, sizeof(out), job);
            len = append(out, len, sizeof(out), "\"");
        }
        if (task != NULL) {
            len = append(out, len, sizeof(out), ",\"task\":\"");
            len = json_escape(out, len, sizeof(out), task);
            len = append(out, len, sizeof(out), "\"");
        }
        if (level >= LOG_LEVEL_ERROR)
            len = append(out, len, sizeof(out), ",\"src\":\"%s:%d:%s\"", file,
                         line, func);
        len = append(out, len, sizeof(out), ",\"msg\":\"");
        len = json_escape(out, len, sizeof(out), msg);
        len = append(out, len, sizeof(out), "\"}\n");
    } else {
        len = append(out, len, sizeof(out), "%s.%03ldZ %-5s %s", ts,
                     now.tv_nsec / 1000000, level_names[level], log_process);
        if (job != NULL)
            len = append(out, len, sizeof(out), " job=%s", job);
        if (task != NULL)
            len = append(out, len, sizeof(out), " task=%s", task);
        len = append(out, len, sizeof(out), ": %s", msg);
        if (level >= LOG_LEVEL_ERROR)
            len =
                append(out, len, sizeof(out), " (%s:%d:%s)", file, line, func);
        len = append(out, len, sizeof(out), "\n");
    }
    /* One write(2) per line so lines from several processes never mix. */
    if (write(STDERR_FILENO, out, len) < 0) {
        /* Nowhere left to report it. */
    }
}
