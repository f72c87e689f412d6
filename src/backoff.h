#ifndef MJQ_BACKOFF_H
#define MJQ_BACKOFF_H

#include <stddef.h>

/*
 * Delay before the poll numbered `attempt` (0 = first poll after submit),
 * from a progressive schedule whose last value repeats.
 */
long backoff_poll_delay(const long *schedule, size_t n, unsigned attempt);

/*
 * Capped exponential backoff with jitter, for retries: the nominal delay
 * base * 2^attempt (attempt 0 = first retry), capped at max, then drawn
 * uniformly from [nominal/2, nominal] ("equal jitter": never zero, never
 * synchronised across workers). `rnd` is uniform in [0, 1).
 */
long backoff_retry_delay(long base_ms, long max_ms, unsigned attempt,
                         double rnd);

/* Process-local uniform random number in [0, 1); seeded from the clock
 * and pid on first use. Not for cryptography. */
double backoff_random(void);

#endif
