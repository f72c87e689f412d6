#ifndef MJQ_CLOCK_H
#define MJQ_CLOCK_H

#include <stdint.h>

/* Wall clock, unix epoch milliseconds: for results, events and records. */
int64_t clock_wall_ms(void);

/* Monotonic milliseconds: for deadlines and intervals, never for output. */
int64_t clock_mono_ms(void);

#endif
