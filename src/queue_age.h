#ifndef MJQ_QUEUE_AGE_H
#define MJQ_QUEUE_AGE_H

#include <stddef.h>
#include <stdint.h>

/*
 * The age of the oldest job waiting in a queue, without help from the
 * producers. Redis keeps, per queue, a counter of the payloads taken from
 * it (<prefix>stats:taken:<queue>, see store.c), so the pushes so far are
 * P = taken + LLEN. Payloads leave a queue from its right end in push
 * order, so the oldest waiting one is push number taken + 1, and it was
 * pushed before the first moment P reached taken + 1. The supervisor
 * samples (time, P) about every second into a history; the age is the
 * time since the earliest sample with P >= taken + 1.
 *
 * Limits (docs/operations.md): the estimate is late by up to one sampling
 * period; older samples are thinned so that a few hundred cover days,
 * with a resolution of about 3% of their age; a job older than the
 * history (the supervisor started or reloaded after it was pushed) gets
 * the age of the oldest sample, a lower bound; payloads a hand-back or
 * the sweep puts back at the old end are counted out of "taken" again,
 * so they are the oldest by number, as they are by place.
 */

struct queue_age_sample {
    int64_t t_ms;     /* monotonic ms of the sample */
    long long pushes; /* P = taken + LLEN at that time */
};

/*
 * The estimate, as a pure function over a history s[0..n) ordered by
 * time with non-decreasing pushes. Returns the age in ms of the oldest
 * of depth waiting jobs at now_ms (0 when depth <= 0 or n == 0). Sets
 * *lower_bound to 1 when the history does not reach back to that job's
 * push (the age returned is then the age of the oldest sample), else 0.
 */
int64_t queue_age_estimate(const struct queue_age_sample *s, size_t n,
                           int64_t now_ms, long long taken, long long depth,
                           int *lower_bound);

/* Most samples one history holds before it thins the older ones. */
#define QUEUE_AGE_CAP 512

/* The history of one queue. Opaque. */
struct queue_age;

struct queue_age *queue_age_new(void);
/* NULL-safe. */
void queue_age_free(struct queue_age *h);

/*
 * Adds a sample (now_ms monotonic). A sample whose P equals the last one
 * adds nothing (the estimate only needs the first time each P was seen);
 * a P below the last one (the counter or the queue was reset by hand, or
 * Redis lost its data) starts the history again. When the history is
 * full, older samples are thinned (see above).
 */
void queue_age_record(struct queue_age *h, int64_t now_ms, long long taken,
                      long long depth);

/* queue_age_estimate() over h. */
int64_t queue_age_oldest_ms(const struct queue_age *h, int64_t now_ms,
                            long long taken, long long depth, int *lower_bound);

/* Samples held (tests). */
size_t queue_age_len(const struct queue_age *h);

#endif
