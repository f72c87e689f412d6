#ifndef MJQ_KEYS_H
#define MJQ_KEYS_H

#include <stddef.h>

/*
 * Every Redis key name mjq uses, in one place. The wire contract
 * (docs/contract.md) fixes the public ones: queue, results, events,
 * cancel, dead. The rest are mjq's own (docs/architecture.md).
 *
 * Each function writes "<prefix><kind>[:<name>]" into buf (NUL-terminated)
 * and returns buf, or NULL if it does not fit in len. Names are not
 * escaped: job ids and queue names are validated before they get here.
 */

char *keys_queue(char *buf, size_t len, const char *prefix, const char *queue);
/* reply_to NULL or "" means the shared results stream. */
char *keys_results(char *buf, size_t len, const char *prefix,
                   const char *reply_to);
char *keys_events(char *buf, size_t len, const char *prefix);
char *keys_dead(char *buf, size_t len, const char *prefix);
char *keys_cancel(char *buf, size_t len, const char *prefix, const char *id);
char *keys_job(char *buf, size_t len, const char *prefix, const char *id);
char *keys_processing(char *buf, size_t len, const char *prefix,
                      const char *worker);
char *keys_heartbeat(char *buf, size_t len, const char *prefix,
                     const char *worker);
char *keys_workers(char *buf, size_t len, const char *prefix);
/* Leases of jobs in flight upstream on account (mode NULL: all modes). */
char *keys_lease(char *buf, size_t len, const char *prefix, const char *account,
                 const char *mode);
/* The lock that lets one supervisor sweep per interval. */
char *keys_sweep_lock(char *buf, size_t len, const char *prefix);
/* The configured accounts, described for `mjq status`. */
char *keys_accounts(char *buf, size_t len, const char *prefix);
/* Which account runs upstream task task_id (for follow-ups). */
char *keys_task_owner(char *buf, size_t len, const char *prefix,
                      const char *task_id);
/* Counter of payloads taken from queue (for the oldest-job age). */
char *keys_stats_taken(char *buf, size_t len, const char *prefix,
                       const char *queue);
/* Hash of results written in one minute, by status (unix minute). */
char *keys_stats_finished(char *buf, size_t len, const char *prefix,
                          long long minute);

/* Largest key mjq builds: prefix (<=64) + kind + a 128-char id. */
#define KEYS_MAX 256

#endif
