/*
 * Seeded pseudo-random numbers: xoshiro256** (Blackman and Vigna) with its
 * state filled from the seed by splitmix64, as its authors recommend. Small,
 * fast, and the same sequence for a seed on every machine, which is what
 * reproducible sampling and benchmark load generators need. Not for
 * anything that must be unpredictable.
 */
#include "ia/base.h"

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void ia_rng_seed(ia_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

uint64_t ia_rng_next(ia_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double ia_rng_uniform(ia_rng *r) { return (double)(ia_rng_next(r) >> 11) * 0x1.0p-53; }

float ia_rng_uniform_f32(ia_rng *r) { return (float)(ia_rng_next(r) >> 40) * (1.0f / 16777216.0f); }
