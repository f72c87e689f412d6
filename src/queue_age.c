#include "queue_age.h"

#include <stdlib.h>
#include <string.h>

#include "xmalloc.h"

/* A sample is kept while the gap to the next kept (newer) sample is at
 * least 1/THIN_RATIO of its age: resolution proportional to age, and
 * THIN_RATIO * ln(range / period) samples for a range. */
#define THIN_RATIO 32

struct queue_age {
    struct queue_age_sample s[QUEUE_AGE_CAP];
    size_t n;
};

int64_t queue_age_estimate(const struct queue_age_sample *s, size_t n,
                           int64_t now_ms, long long taken, long long depth,
                           int *lower_bound)
{
    long long want = taken + 1; /* push number of the oldest waiting job */
    size_t lo = 0, hi = n;
    int64_t age;

    *lower_bound = 0;
    if (depth <= 0 || n == 0)
        return 0;
    /* The first sample with pushes >= want (pushes never decrease). */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (s[mid].pushes >= want)
            hi = mid;
        else
            lo = mid + 1;
    }
    if (lo == n) /* not seen yet: pushed after the last sample */
        return 0;
    if (lo == 0)
        *lower_bound = 1; /* it may be older than the history */
    age = now_ms - s[lo].t_ms;
    return age > 0 ? age : 0;
}

struct queue_age *queue_age_new(void)
{
    return xcalloc(1, sizeof(struct queue_age));
}

void queue_age_free(struct queue_age *h)
{
    free(h);
}

/* Drops samples that are close to a newer kept one relative to their age;
 * the oldest and the newest always stay. */
static void thin(struct queue_age *h, int64_t now_ms)
{
    size_t keep = h->n - 1; /* index of the last kept sample, from the end */
    size_t out;

    /* Walk from new to old, marking kept samples by compacting toward
     * the end of the array. */
    out = h->n - 1;
    for (size_t i = h->n - 1; i-- > 1;) {
        int64_t gap = h->s[keep].t_ms - h->s[i].t_ms;
        int64_t age = now_ms - h->s[i].t_ms;

        if (gap * THIN_RATIO >= age) {
            h->s[--out] = h->s[i];
            keep = out;
        }
    }
    h->s[--out] = h->s[0];
    h->n = h->n - out;
    memmove(h->s, h->s + out, h->n * sizeof(h->s[0]));
    if (h->n == QUEUE_AGE_CAP) {
        /* Nothing was close enough to drop (a range of decades): give
         * up the oldest sample. */
        memmove(h->s, h->s + 1, (h->n - 1) * sizeof(h->s[0]));
        h->n--;
    }
}

void queue_age_record(struct queue_age *h, int64_t now_ms, long long taken,
                      long long depth)
{
    long long p = taken + depth;

    if (p < 0)
        p = 0;
    if (h->n > 0 && p == h->s[h->n - 1].pushes)
        return;
    if (h->n > 0 && (p < h->s[h->n - 1].pushes || now_ms < h->s[h->n - 1].t_ms))
        h->n = 0;
    if (h->n == QUEUE_AGE_CAP)
        thin(h, now_ms);
    h->s[h->n].t_ms = now_ms;
    h->s[h->n].pushes = p;
    h->n++;
}

int64_t queue_age_oldest_ms(const struct queue_age *h, int64_t now_ms,
                            long long taken, long long depth, int *lower_bound)
{
    return queue_age_estimate(h->s, h->n, now_ms, taken, depth, lower_bound);
}

size_t queue_age_len(const struct queue_age *h)
{
    return h->n;
}
