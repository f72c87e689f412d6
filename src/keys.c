#include "keys.h"

#include <stdio.h>

static char *build(char *buf, size_t len, const char *prefix, const char *kind,
                   const char *name)
{
    int n;

    if (name != NULL)
        n = snprintf(buf, len, "%s%s:%s", prefix, kind, name);
    else
        n = snprintf(buf, len, "%s%s", prefix, kind);
    return n < 0 || (size_t)n >= len ? NULL : buf;
}

char *keys_queue(char *buf, size_t len, const char *prefix, const char *queue)
{
    return build(buf, len, prefix, "queue", queue);
}

char *keys_results(char *buf, size_t len, const char *prefix,
                   const char *reply_to)
{
    if (reply_to != NULL && reply_to[0] == '\0')
        reply_to = NULL;
    return build(buf, len, prefix, "results", reply_to);
}

char *keys_events(char *buf, size_t len, const char *prefix)
{
    return build(buf, len, prefix, "events", NULL);
}

char *keys_dead(char *buf, size_t len, const char *prefix)
{
    return build(buf, len, prefix, "dead", NULL);
}

char *keys_cancel(char *buf, size_t len, const char *prefix, const char *id)
{
    return build(buf, len, prefix, "cancel", id);
}

char *keys_job(char *buf, size_t len, const char *prefix, const char *id)
{
    return build(buf, len, prefix, "job", id);
}

char *keys_processing(char *buf, size_t len, const char *prefix,
                      const char *worker)
{
    return build(buf, len, prefix, "processing", worker);
}

char *keys_heartbeat(char *buf, size_t len, const char *prefix,
                     const char *worker)
{
    return build(buf, len, prefix, "worker", worker);
}

char *keys_workers(char *buf, size_t len, const char *prefix)
{
    return build(buf, len, prefix, "workers", NULL);
}

char *keys_task_owner(char *buf, size_t len, const char *prefix,
                      const char *task_id)
{
    return build(buf, len, prefix, "task", task_id);
}

char *keys_accounts(char *buf, size_t len, const char *prefix)
{
    return build(buf, len, prefix, "accounts", NULL);
}

char *keys_stats_taken(char *buf, size_t len, const char *prefix,
                       const char *queue)
{
    return build(buf, len, prefix, "stats:taken", queue);
}

char *keys_stats_finished(char *buf, size_t len, const char *prefix,
                          long long minute)
{
    char name[24];

    snprintf(name, sizeof(name), "%lld", minute);
    return build(buf, len, prefix, "stats:finished", name);
}

char *keys_lease(char *buf, size_t len, const char *prefix, const char *account,
                 const char *mode)
{
    int n = snprintf(buf, len, "%slease:%s%s%s", prefix, account,
                     mode != NULL ? ":" : "", mode != NULL ? mode : "");

    return n < 0 || (size_t)n >= len ? NULL : buf;
}

char *keys_sweep_lock(char *buf, size_t len, const char *prefix)
{
    return build(buf, len, prefix, "sweep:lock", NULL);
}
