#include "backoff.h"

#include <stdint.h>
#include <time.h>
#include <unistd.h>

long backoff_poll_delay(const long *schedule, size_t n, unsigned attempt)
{
    if (n == 0)
        return 0;
    return schedule[attempt < n ? attempt : n - 1];
}

long backoff_retry_delay(long base_ms, long max_ms, unsigned attempt,
                         double rnd)
{
    long nominal = base_ms;

    for (unsigned i = 0; i < attempt && nominal > 0 && nominal < max_ms; i++)
        nominal = nominal > max_ms / 2 ? max_ms : nominal * 2;
    if (nominal > max_ms)
        nominal = max_ms;
    if (!(rnd >= 0 && rnd < 1)) /* also catches NaN */
        rnd = 0;
    return nominal / 2 + (long)(rnd * (double)(nominal - nominal / 2));
}

double backoff_random(void)
{
    static uint64_t state;

    if (state == 0) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        state = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^
                ((uint64_t)getpid() << 40) ^ 0x9e3779b97f4a7c15ULL;
    }
    /* xorshift64* */
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    return (double)((state * 0x2545f4914f6cdd1dULL) >> 11) / 9007199254740992.0;
}
