/*
 * Helpers shared by the CPU kernel tests: a seeded random generator, the list
 * of variants, and a macro that defines one test case per variant so that a
 * variant this CPU lacks shows up as SKIP rather than as a silent pass.
 */
#ifndef IA_KERNELS_TEST_UTIL_H
#define IA_KERNELS_TEST_UTIL_H

#include <stdint.h>

#include "ia/kernels.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static inline void rng_seed(uint64_t s) { rng_state = s * 0x9e3779b97f4a7c15ull + 1; }

/* Uniform in [lo, hi) from a xorshift64* stream. */
static inline float rng_uniform(float lo, float hi) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    uint64_t r = rng_state * 0x2545f4914f6cdd1dull;
    return lo + (hi - lo) * (float)((r >> 40) * (1.0 / 16777216.0));
}

static inline void rng_fill(float *x, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++)
        x[i] = rng_uniform(lo, hi);
}

/* Defines tname_generic, tname_avx2 and tname_avx512, each calling
 * body(backend) or skipping when the CPU cannot run that variant. */
#define TEST_EACH_VARIANT(tname, body)                                 \
    TEST(tname##_generic) { body(ia_backend_cpu_variant("generic")); } \
    TEST(tname##_avx2) {                                               \
        const ia_backend *b_ = ia_backend_cpu_variant("avx2");         \
        if (!b_)                                                       \
            SKIP("this CPU lacks AVX2+FMA");                           \
        body(b_);                                                      \
    }                                                                  \
    TEST(tname##_avx512) {                                             \
        const ia_backend *b_ = ia_backend_cpu_variant("avx512");       \
        if (!b_)                                                       \
            SKIP("this CPU lacks AVX-512 (F/BW/VL/DQ)");               \
        body(b_);                                                      \
    }

#endif
