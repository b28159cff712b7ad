/*
 * gemm_avx2: the AVX2+FMA micro-kernels behind linear (driver: gemm.c).
 *
 * A 6x16 register block: 12 ymm accumulators, two for the 16 columns of the
 * packed weight panel and one for the broadcast element of x, which is 15 of
 * the 16 ymm registers. Per k step that is 12 FMAs against 2 panel loads and
 * 6 broadcasts, so the two FMA pipes, not the load ports, set the pace.
 *
 * bf16 weights are widened in registers: the panel stores pairs (k, k+1) per
 * output, so one 256-bit load holds 8 outputs for two k steps; shifting each
 * 32-bit lane left by 16 gives the k values as f32 and masking off the low
 * half gives the k+1 values. x stays f32, so products are exact f32 FMAs.
 *
 * f16 weights are widened with F16C: one 128-bit load and vcvtph2ps give
 * 8 outputs of one k step, exactly (every half is a float).
 *
 * The GEMV kernels (m = 1..4, decode) walk whole panels instead of k-blocks:
 * each panel is one contiguous stream of nr * k weights, read once, with a
 * software prefetch a few cache lines ahead within the panel. They compute
 * every output with the micro-kernels' own chain (bias, then one FMA per k
 * in order, then activate_tile), so a row's bits never depend on how many
 * rows share the call; to keep enough independent chains for the FMA
 * latency, one or two rows walk several panels side by side.
 *
 * The row count mr of a call is a compile-time constant inside each
 * instantiation (1..6), so rows past it fold away; the driver handles
 * column edges. The activation runs on the stored tile after the last
 * k-block (activate_tile), which keeps every register for the accumulators.
 */
#include "kernels/cpu/cpu_internal.h"
#include "kernels/cpu/simd_avx2.h"

#include <string.h>

#define MR 6
#define NR 16

#define ALWAYS_INLINE inline __attribute__((always_inline))

/* The accumulators are named variables, not an array: GCC keeps an array
 * that is passed around (even to inlined helpers) in memory, and a store per
 * FMA halves the kernel's speed. ROWS expands a statement for rows 0..5; a
 * row at or past the constant mr folds away. */
#define ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5)
#define DECL(i)                                                          \
    __m256 c##i##0 = _mm256_setzero_ps(), c##i##1 = _mm256_setzero_ps(); \
    const float *x##i = x + (i < mr ? i : 0) * lda;
#define INIT(i)                                         \
    if (i < mr) {                                       \
        if (!a->first) {                                \
            c##i##0 = _mm256_loadu_ps(c + i * ldc);     \
            c##i##1 = _mm256_loadu_ps(c + i * ldc + 8); \
        } else if (a->bias) {                           \
            c##i##0 = _mm256_loadu_ps(a->bias);         \
            c##i##1 = _mm256_loadu_ps(a->bias + 8);     \
        }                                               \
    }
#define FMA(i, kk, b0, b1)                            \
    if (i < mr) {                                     \
        __m256 av = _mm256_broadcast_ss(x##i + (kk)); \
        c##i##0 = _mm256_fmadd_ps(av, b0, c##i##0);   \
        c##i##1 = _mm256_fmadd_ps(av, b1, c##i##1);   \
    }
#define FMA_K(i) FMA(i, k, b0, b1)
#define FMA_K1(i) FMA(i, k + 1, b0, b1)
#define STORE(i)                                    \
    if (i < mr) {                                   \
        _mm256_storeu_ps(c + i * ldc, c##i##0);     \
        _mm256_storeu_ps(c + i * ldc + 8, c##i##1); \
    }

/* The activation runs on the stored tile, once per tile: keeping it out of
 * the kernel body leaves all registers to the accumulators. */
static __attribute__((noinline)) void activate_tile(float *c, size_t ldc, int mr,
                                                    ia_activation act) {
    for (int i = 0; i < mr; i++) {
        float *row = c + (size_t)i * ldc;
        _mm256_storeu_ps(row, v_act(act, _mm256_loadu_ps(row)));
        _mm256_storeu_ps(row + 8, v_act(act, _mm256_loadu_ps(row + 8)));
    }
}

static ALWAYS_INLINE void ukr_f32_body(const cpu_ukr_args *a, const size_t mr) {
    const float *x = a->a;
    const float *b = a->b;
    float *c = a->c;
    const size_t lda = a->lda, ldc = a->ldc, kc = a->kc;
    ROWS(DECL)
    ROWS(INIT)
    if (a->pf) {
        const char *pf = a->pf;
        const size_t step = a->pf_step;
        for (size_t k = 0; k < kc; k++, b += NR, pf += step) {
            _mm_prefetch(pf, _MM_HINT_T0);
            __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
            ROWS(FMA_K)
        }
    } else {
        for (size_t k = 0; k < kc; k++, b += NR) {
            __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
            ROWS(FMA_K)
        }
    }
    ROWS(STORE)
    if (a->last && a->act != IA_ACT_NONE)
        activate_tile(c, ldc, (int)mr, a->act);
}

static ALWAYS_INLINE void ukr_bf16_body(const cpu_ukr_args *a, const size_t mr) {
    const float *x = a->a;
    const __m256i *b = a->b; /* 2 vectors per k pair: outputs 0-7, 8-15 */
    float *c = a->c;
    const size_t lda = a->lda, ldc = a->ldc, kc = a->kc;
    const __m256i hi_mask = _mm256_set1_epi32((int)0xffff0000u);
    ROWS(DECL)
    ROWS(INIT)
    size_t k = 0;
#define BF16_PAIR_STEP                                                \
    __m256i p0 = _mm256_load_si256(b), p1 = _mm256_load_si256(b + 1); \
    __m256 b0 = _mm256_castsi256_ps(_mm256_slli_epi32(p0, 16));       \
    __m256 b1 = _mm256_castsi256_ps(_mm256_slli_epi32(p1, 16));       \
    ROWS(FMA_K)                                                       \
    b0 = _mm256_castsi256_ps(_mm256_and_si256(p0, hi_mask));          \
    b1 = _mm256_castsi256_ps(_mm256_and_si256(p1, hi_mask));          \
    ROWS(FMA_K1)
    if (a->pf) {
        const char *pf = a->pf;
        const size_t step = 2 * a->pf_step;
        for (; k + 2 <= kc; k += 2, b += 2, pf += step) {
            _mm_prefetch(pf, _MM_HINT_T0);
            BF16_PAIR_STEP
        }
    } else {
        for (; k + 2 <= kc; k += 2, b += 2) {
            BF16_PAIR_STEP
        }
    }
#undef BF16_PAIR_STEP
    if (k < kc) { /* odd k: the last pair's high halves are padding */
        __m256 b0 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_load_si256(b), 16));
        __m256 b1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_load_si256(b + 1), 16));
        ROWS(FMA_K)
    }
    ROWS(STORE)
    if (a->last && a->act != IA_ACT_NONE)
        activate_tile(c, ldc, (int)mr, a->act);
}

static ALWAYS_INLINE void ukr_f16_body(const cpu_ukr_args *a, const size_t mr) {
    const float *x = a->a;
    const __m128i *b = a->b; /* 2 vectors of 8 halves per k */
    float *c = a->c;
    const size_t lda = a->lda, ldc = a->ldc, kc = a->kc;
    ROWS(DECL)
    ROWS(INIT)
    for (size_t k = 0; k < kc; k++, b += 2) {
        __m256 b0 = _mm256_cvtph_ps(_mm_load_si128(b));
        __m256 b1 = _mm256_cvtph_ps(_mm_load_si128(b + 1));
        ROWS(FMA_K)
    }
    ROWS(STORE)
    if (a->last && a->act != IA_ACT_NONE)
        activate_tile(c, ldc, (int)mr, a->act);
}

static void ukr_f16(const cpu_ukr_args *a) {
    switch (a->mr) {
    case 1:
        ukr_f16_body(a, 1);
        break;
    case 2:
        ukr_f16_body(a, 2);
        break;
    case 3:
        ukr_f16_body(a, 3);
        break;
    case 4:
        ukr_f16_body(a, 4);
        break;
    case 5:
        ukr_f16_body(a, 5);
        break;
    default:
        ukr_f16_body(a, 6);
        break;
    }
}

static void ukr_f32(const cpu_ukr_args *a) {
    switch (a->mr) {
    case 1:
        ukr_f32_body(a, 1);
        break;
    case 2:
        ukr_f32_body(a, 2);
        break;
    case 3:
        ukr_f32_body(a, 3);
        break;
    case 4:
        ukr_f32_body(a, 4);
        break;
    case 5:
        ukr_f32_body(a, 5);
        break;
    default:
        ukr_f32_body(a, 6);
        break;
    }
}

static void ukr_bf16(const cpu_ukr_args *a) {
    switch (a->mr) {
    case 1:
        ukr_bf16_body(a, 1);
        break;
    case 2:
        ukr_bf16_body(a, 2);
        break;
    case 3:
        ukr_bf16_body(a, 3);
        break;
    case 4:
        ukr_bf16_body(a, 4);
        break;
    case 5:
        ukr_bf16_body(a, 5);
        break;
    default:
        ukr_bf16_body(a, 6);
        break;
    }
}

/* ---- GEMV (m = 1..4): gemv_tmpl.h over ymm -------------------------------------- */

#define GV __m256
#define GV_LANES 8
#define GV_ZERO() _mm256_setzero_ps()
#define GV_LOADU(p) _mm256_loadu_ps(p)
#define GV_STOREU(p, v) _mm256_storeu_ps(p, v)
#define GV_SET1(f) _mm256_broadcast_ss(&(f))
#define GV_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define GEMV_PREFETCH 512
#include "kernels/cpu/gemv_tmpl.h"

static ALWAYS_INLINE void gemv_f32_body(const cpu_gemv_args *a, size_t p, const size_t m,
                                        const size_t np) {
#define F32_LOAD(off, r0, r1)                              \
    __m256 r0 = _mm256_load_ps((const float *)pb + (off)); \
    __m256 r1 = _mm256_load_ps((const float *)pb + (off) + 8);
#define GLOAD_EVEN F32_LOAD(0, b0, b1)
#define GLOAD_ODD F32_LOAD(NR, h0, h1)
#define GLOAD_TAIL F32_LOAD(0, b0, b1)
    GEMV_BODY(float, NR * 4)
#undef GLOAD_EVEN
#undef GLOAD_ODD
#undef GLOAD_TAIL
#undef F32_LOAD
}

static ALWAYS_INLINE void gemv_f16_body(const cpu_gemv_args *a, size_t p, const size_t m,
                                        const size_t np) {
#define F16_LOAD(off, r0, r1)                                                 \
    __m256 r0 = _mm256_cvtph_ps(_mm_load_si128((const __m128i *)pb + (off))); \
    __m256 r1 = _mm256_cvtph_ps(_mm_load_si128((const __m128i *)pb + (off) + 1));
#define GLOAD_EVEN F16_LOAD(0, b0, b1)
#define GLOAD_ODD F16_LOAD(2, h0, h1)
#define GLOAD_TAIL F16_LOAD(0, b0, b1)
    GEMV_BODY(uint16_t, NR * 2)
#undef GLOAD_EVEN
#undef GLOAD_ODD
#undef GLOAD_TAIL
#undef F16_LOAD
}

/* bf16 pairs: one 256-bit load holds 8 outputs at k (low halves) and k + 1
 * (high halves); the pair stride equals 2 k steps of 16 halves. */
static ALWAYS_INLINE void gemv_bf16_body(const cpu_gemv_args *a, size_t p, const size_t m,
                                         const size_t np) {
    const __m256i hi_mask = _mm256_set1_epi32((int)0xffff0000u);
#define GLOAD_EVEN                                              \
    __m256i p0 = _mm256_load_si256((const __m256i *)pb);        \
    __m256i p1 = _mm256_load_si256((const __m256i *)pb + 1);    \
    __m256 b0 = _mm256_castsi256_ps(_mm256_slli_epi32(p0, 16)); \
    __m256 b1 = _mm256_castsi256_ps(_mm256_slli_epi32(p1, 16));
#define GLOAD_ODD                                                   \
    __m256 h0 = _mm256_castsi256_ps(_mm256_and_si256(p0, hi_mask)); \
    __m256 h1 = _mm256_castsi256_ps(_mm256_and_si256(p1, hi_mask));
#define GLOAD_TAIL GLOAD_EVEN
    GEMV_BODY(uint16_t, NR * 2)
#undef GLOAD_EVEN
#undef GLOAD_ODD
#undef GLOAD_TAIL
}

GEMV_FUNCTIONS(gemv_f32_body, gemv_f16_body, gemv_bf16_body)

const cpu_gemm_kernel cpu_gemm_avx2 = {.mr = MR,
                                       .nr = NR,
                                       .f32 = ukr_f32,
                                       .bf16 = ukr_bf16,
                                       .f16 = ukr_f16,
                                       .gemv = gemv,
                                       .quant = &cpu_quant_avx2};
