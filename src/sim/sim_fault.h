#ifndef MJQ_SIM_FAULT_H
#define MJQ_SIM_FAULT_H

#include <stdbool.h>
#include <stdint.h>

#include "sim_opts.h"

/*
 * The simulator's PRNG (xorshift64*) and the per-request fault draw. One
 * generator per server: with --seed, a given request sequence sees the
 * same faults on every run.
 */

struct sim_rng {
    uint64_t s; /* never 0 */
};

/* Seeds the generator; any seed (even 0) is valid. */
void sim_rng_seed(struct sim_rng *r, uint64_t seed);
uint64_t sim_rng_next(struct sim_rng *r);
/* Uniform in [0, 1). */
double sim_rng_unit(struct sim_rng *r);
/*
 * True with probability p. p <= 0 never draws (so a fault-free run does
 * not consume the sequence); p >= 1 is always true.
 */
bool sim_rng_chance(struct sim_rng *r, double p);
/* Uniform integer in [lo, hi]. */
int sim_rng_range(struct sim_rng *r, int lo, int hi);

/*
 * Draws the fault for one request: each kind with its own probability,
 * in enum order, first hit wins. queue_full only applies to submits.
 * Returns SIM_FAULT_NONE when none hits.
 */
enum sim_fault sim_fault_draw(struct sim_rng *r,
                              const double rate[SIM_FAULT_COUNT],
                              bool is_submit);

#endif
