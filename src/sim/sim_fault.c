#include "sim_fault.h"

void sim_rng_seed(struct sim_rng *r, uint64_t seed)
{
    /* Scramble so nearby seeds give unrelated sequences; avoid 0. */
    uint64_t z = seed + UINT64_C(0x9e3779b97f4a7c15);

    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    z ^= z >> 31;
    r->s = z != 0 ? z : UINT64_C(0x2545f4914f6cdd1d);
}

uint64_t sim_rng_next(struct sim_rng *r)
{
    uint64_t x = r->s;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->s = x;
    return x * UINT64_C(0x2545f4914f6cdd1d);
}

double sim_rng_unit(struct sim_rng *r)
{
    return (double)(sim_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

bool sim_rng_chance(struct sim_rng *r, double p)
{
    if (p <= 0.0)
        return false;
    if (p >= 1.0)
        return true;
    return sim_rng_unit(r) < p;
}

int sim_rng_range(struct sim_rng *r, int lo, int hi)
{
    if (hi <= lo)
        return lo;
    return lo + (int)(sim_rng_next(r) % (uint64_t)(hi - lo + 1));
}

enum sim_fault sim_fault_draw(struct sim_rng *r,
                              const double rate[SIM_FAULT_COUNT],
                              bool is_submit)
{
    for (int f = 0; f < SIM_FAULT_COUNT; f++) {
        if (f == SIM_FAULT_QUEUE_FULL && !is_submit)
            continue;
        if (sim_rng_chance(r, rate[f]))
            return (enum sim_fault)f;
    }
    return SIM_FAULT_NONE;
}
