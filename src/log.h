#ifndef MJQ_LOG_H
#define MJQ_LOG_H

/*
 * Leveled logging to stderr, as text or JSON lines. The macros test the
 * level before any argument is formatted (redis serverLog), and capture
 * errno at the call site for the *_errno variants.
 *
 * Secrets never go into a format string or argument: callers log names of
 * things (key, url without credentials), never key values.
 */

enum log_level {
    LOG_LEVEL_DEBUG,
    LOG_LEVEL_INFO,
    LOG_LEVEL_WARN,
    LOG_LEVEL_ERROR,
};

enum log_format {
    LOG_FORMAT_TEXT,
    LOG_FORMAT_JSON,
};

extern enum log_level log_threshold;

/*
 * Sets the level, the format and the process name printed on every line
 * (the worker id, "supervisor", "sim"...). The name is copied.
 */
void log_setup(enum log_level level, enum log_format format,
               const char *process);

/*
 * Marks this process as the worker with that id (copied): JSON lines then
 * also carry "worker", the key results and events use for it. Text lines
 * already start with the id.
 */
void log_set_worker(const char *worker);

/* Parses "debug", "info", "warn", "error". Returns 0 or -1. */
int log_level_parse(const char *s, enum log_level *out);
/* Parses "text", "json". Returns 0 or -1. */
int log_format_parse(const char *s, enum log_format *out);

/*
 * Writes one line. job and task may be NULL. errnum is 0 or an errno to
 * append as ": <strerror>". Use the macros instead.
 */
void log_write(enum log_level level, const char *job, const char *task,
               int errnum, const char *file, int line, const char *func,
               const char *fmt, ...) __attribute__((format(printf, 8, 9)));

#define LOG_AT(level, job, task, errnum, ...)                                  \
    do {                                                                       \
        if ((level) >= log_threshold)                                          \
            log_write((level), (job), (task), (errnum), __FILE__, __LINE__,    \
                      __func__, __VA_ARGS__);                                  \
    } while (0)

#define log_debug(...) LOG_AT(LOG_LEVEL_DEBUG, NULL, NULL, 0, __VA_ARGS__)
#define log_info(...)  LOG_AT(LOG_LEVEL_INFO, NULL, NULL, 0, __VA_ARGS__)
#define log_warn(...)  LOG_AT(LOG_LEVEL_WARN, NULL, NULL, 0, __VA_ARGS__)
#define log_error(...) LOG_AT(LOG_LEVEL_ERROR, NULL, NULL, 0, __VA_ARGS__)
/* Appends strerror(errno), with errno read before anything else runs. */
#define log_error_errno(...)                                                   \
    LOG_AT(LOG_LEVEL_ERROR, NULL, NULL, errno, __VA_ARGS__)
#define log_warn_errno(...)                                                    \
    LOG_AT(LOG_LEVEL_WARN, NULL, NULL, errno, __VA_ARGS__)

/* Job-scoped variants: job id and upstream task id (either may be NULL). */
#define log_job_debug(job, task, ...)                                          \
    LOG_AT(LOG_LEVEL_DEBUG, job, task, 0, __VA_ARGS__)
#define log_job_info(job, task, ...)                                           \
    LOG_AT(LOG_LEVEL_INFO, job, task, 0, __VA_ARGS__)
#define log_job_warn(job, task, ...)                                           \
    LOG_AT(LOG_LEVEL_WARN, job, task, 0, __VA_ARGS__)
#define log_job_error(job, task, ...)                                          \
    LOG_AT(LOG_LEVEL_ERROR, job, task, 0, __VA_ARGS__)

#endif
