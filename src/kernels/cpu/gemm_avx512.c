/*
 * gemm_avx512: the AVX-512 micro-kernels behind linear (driver: gemm.c).
 *
 * A 12x32 register block in zmm: 24 accumulators, two panel vectors and one
 * broadcast, 27 of the 32 zmm registers; per k step 24 FMAs against 2 panel
 * loads and 12 broadcasts. Weights are packed with panels of 32 outputs.
 *
 * bf16 has two kernels, chosen at run time by the dispatcher:
 *  - with AVX512_BF16, vdpbf16ps: the driver first converts the tile's rows
 *    of x to bf16 pairs (pack_a_bf16 below), and each instruction then does
 *    two k steps for 16 outputs, accumulating in f32;
 *  - without it, the bf16 panel is widened to f32 in registers as on AVX2
 *    (shift / mask of the pair lanes) and x stays f32.
 * The activation epilogue reuses the AVX2 vector math on the stored tile: it
 * runs once per tile, not per k step.
 *
 * The micro-kernels' chain per output (bias, then k in order, k-blocks even
 * so that bf16 pairs never straddle) does not depend on mr or on the tiling,
 * so a row's bits do not depend on m (see gemm.c). The GEMV for m = 1..4
 * below keeps that chain, as gemm_avx2.c's does; it computes in f32, so the
 * vdpbf16ps kernel, which rounds x to bf16, keeps bf16 weights to itself
 * (gemm.c skips a GEMV for bf16 when the kernel packs x as bf16).
 */
#include <string.h>

#include "kernels/cpu/cpu_internal.h"
#include "kernels/cpu/simd_avx2.h"

#define MR 12
#define NR 32

#define ALWAYS_INLINE inline __attribute__((always_inline))

/* Named accumulators (an array would live in memory, see gemm_avx2.c); ROWS
 * expands a statement for rows 0..11, rows at or past the constant mr fold. */
#define ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
#define DECL(i)                                                          \
    __m512 c##i##0 = _mm512_setzero_ps(), c##i##1 = _mm512_setzero_ps(); \
    const XT *x##i = x + (i < mr ? i : 0) * lda;
#define INIT(i)                                          \
    if (i < mr) {                                        \
        if (!a->first) {                                 \
            c##i##0 = _mm512_loadu_ps(c + i * ldc);      \
            c##i##1 = _mm512_loadu_ps(c + i * ldc + 16); \
        } else if (a->bias) {                            \
            c##i##0 = _mm512_loadu_ps(a->bias);          \
            c##i##1 = _mm512_loadu_ps(a->bias + 16);     \
        }                                                \
    }
#define FMA(i, kk, b0, b1)                          \
    if (i < mr) {                                   \
        __m512 av = _mm512_set1_ps(x##i[kk]);       \
        c##i##0 = _mm512_fmadd_ps(av, b0, c##i##0); \
        c##i##1 = _mm512_fmadd_ps(av, b1, c##i##1); \
    }
#define FMA_K(i) FMA(i, k, b0, b1)
#define FMA_K1(i) FMA(i, k + 1, h0, h1)
#define DOT(i)                                                   \
    if (i < mr) {                                                \
        __m512bh av = (__m512bh)_mm512_set1_epi32((int)x##i[p]); \
        c##i##0 = _mm512_dpbf16_ps(c##i##0, av, b0);             \
        c##i##1 = _mm512_dpbf16_ps(c##i##1, av, b1);             \
    }
#define STORE(i)                                     \
    if (i < mr) {                                    \
        _mm512_storeu_ps(c + i * ldc, c##i##0);      \
        _mm512_storeu_ps(c + i * ldc + 16, c##i##1); \
    }

/* The activation runs on the stored tile, once per tile. */
static __attribute__((noinline)) void activate_tile(float *c, size_t ldc, int mr,
                                                    ia_activation act) {
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < NR; j += 8) {
            float *p = c + (size_t)i * ldc + j;
            _mm256_storeu_ps(p, v_act(act, _mm256_loadu_ps(p)));
        }
}

#define XT float
static ALWAYS_INLINE void ukr_f32_body(const cpu_ukr_args *a, const size_t mr) {
    const float *x = a->a, *b = a->b;
    float *c = a->c;
    const size_t lda = a->lda, ldc = a->ldc, kc = a->kc;
    ROWS(DECL)
    ROWS(INIT)
    for (size_t k = 0; k < kc; k++, b += NR) {
        __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
        ROWS(FMA_K)
    }
    ROWS(STORE)
    if (a->last && a->act != IA_ACT_NONE)
        activate_tile(c, ldc, (int)mr, a->act);
}

/* bf16 panel widened in registers; x in f32. */
static ALWAYS_INLINE void ukr_bf16_cvt_body(const cpu_ukr_args *a, const size_t mr) {
    const float *x = a->a;
    const __m512i *b = a->b;
    float *c = a->c;
    const size_t lda = a->lda, ldc = a->ldc, kc = a->kc;
    const __m512i hi_mask = _mm512_set1_epi32((int)0xffff0000u);
    ROWS(DECL)
    ROWS(INIT)
    size_t k = 0;
    for (; k + 2 <= kc; k += 2, b += 2) {
        __m512i p0 = _mm512_load_si512(b), p1 = _mm512_load_si512(b + 1);
        __m512 b0 = _mm512_castsi512_ps(_mm512_slli_epi32(p0, 16));
        __m512 b1 = _mm512_castsi512_ps(_mm512_slli_epi32(p1, 16));
        __m512 h0 = _mm512_castsi512_ps(_mm512_and_si512(p0, hi_mask));
        __m512 h1 = _mm512_castsi512_ps(_mm512_and_si512(p1, hi_mask));
        ROWS(FMA_K)
        ROWS(FMA_K1)
    }
    if (k < kc) { /* odd k: the last pair's high halves are padding */
        __m512 b0 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_load_si512(b), 16));
        __m512 b1 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_load_si512(b + 1), 16));
        ROWS(FMA_K)
    }
    ROWS(STORE)
    if (a->last && a->act != IA_ACT_NONE)
        activate_tile(c, ldc, (int)mr, a->act);
}
/* f16 panel widened in registers (vcvtph2ps zmm); x in f32. */
static ALWAYS_INLINE void ukr_f16_body(const cpu_ukr_args *a, const size_t mr) {
    const float *x = a->a;
    const __m256i *b = a->b; /* 2 vectors of 16 halves per k */
    float *c = a->c;
    const size_t lda = a->lda, ldc = a->ldc, kc = a->kc;
    ROWS(DECL)
    ROWS(INIT)
    for (size_t k = 0; k < kc; k++, b += 2) {
        __m512 b0 = _mm512_cvtph_ps(_mm256_load_si256(b));
        __m512 b1 = _mm512_cvtph_ps(_mm256_load_si256(b + 1));
        ROWS(FMA_K)
    }
    ROWS(STORE)
    if (a->last && a->act != IA_ACT_NONE)
        activate_tile(c, ldc, (int)mr, a->act);
}
#undef XT

#define XT uint32_t
/* vdpbf16ps: a holds bf16 pairs (uint32 per two k), kc rounded up to even. */
static ALWAYS_INLINE void ukr_dpbf16_body(const cpu_ukr_args *a, const size_t mr) {
    const uint32_t *x = a->a;
    const __m512i *b = a->b;
    float *c = a->c;
    const size_t lda = a->lda, ldc = a->ldc, pairs = (a->kc + 1) / 2;
    ROWS(DECL)
    ROWS(INIT)
    for (size_t p = 0; p < pairs; p++, b += 2) {
        __m512bh b0 = (__m512bh)_mm512_load_si512(b), b1 = (__m512bh)_mm512_load_si512(b + 1);
        ROWS(DOT)
    }
    ROWS(STORE)
    if (a->last && a->act != IA_ACT_NONE)
        activate_tile(c, ldc, (int)mr, a->act);
}
#undef XT

/* One function per row count so that each body is unrolled for constant mr. */
#define DISPATCH_MR(name, body)               \
    static void name(const cpu_ukr_args *a) { \
        switch (a->mr) {                      \
        case 1:                               \
            body(a, 1);                       \
            break;                            \
        case 2:                               \
            body(a, 2);                       \
            break;                            \
        case 3:                               \
            body(a, 3);                       \
            break;                            \
        case 4:                               \
            body(a, 4);                       \
            break;                            \
        case 5:                               \
            body(a, 5);                       \
            break;                            \
        case 6:                               \
            body(a, 6);                       \
            break;                            \
        case 7:                               \
            body(a, 7);                       \
            break;                            \
        case 8:                               \
            body(a, 8);                       \
            break;                            \
        case 9:                               \
            body(a, 9);                       \
            break;                            \
        case 10:                              \
            body(a, 10);                      \
            break;                            \
        case 11:                              \
            body(a, 11);                      \
            break;                            \
        default:                              \
            body(a, 12);                      \
            break;                            \
        }                                     \
    }

DISPATCH_MR(ukr_f32, ukr_f32_body)
DISPATCH_MR(ukr_bf16_cvt, ukr_bf16_cvt_body)
DISPATCH_MR(ukr_f16, ukr_f16_body)
DISPATCH_MR(ukr_dpbf16, ukr_dpbf16_body)

/* ---- GEMV (m = 1..4): gemv_tmpl.h over zmm -------------------------------------- */

/* Panels are 64-byte aligned; a k step is 32 values (f32, f16), a bf16 pair
 * 64 halves. */
#define GV __m512
#define GV_LANES 16
#define GV_ZERO() _mm512_setzero_ps()
#define GV_LOADU(p) _mm512_loadu_ps(p)
#define GV_STOREU(p, v) _mm512_storeu_ps(p, v)
#define GV_SET1(f) _mm512_set1_ps(f)
#define GV_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define GEMV_PREFETCH 1024
#include "kernels/cpu/gemv_tmpl.h"

static ALWAYS_INLINE void gemv_f32_body(const cpu_gemv_args *a, size_t p, const size_t m,
                                        const size_t np) {
#define F32_LOAD(off, r0, r1)                              \
    __m512 r0 = _mm512_load_ps((const float *)pb + (off)); \
    __m512 r1 = _mm512_load_ps((const float *)pb + (off) + 16);
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
#define F16_LOAD(off, r0, r1)                                                    \
    __m512 r0 = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)pb + (off))); \
    __m512 r1 = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)pb + (off) + 1));
#define GLOAD_EVEN F16_LOAD(0, b0, b1)
#define GLOAD_ODD F16_LOAD(2, h0, h1)
#define GLOAD_TAIL F16_LOAD(0, b0, b1)
    GEMV_BODY(uint16_t, NR * 2)
#undef GLOAD_EVEN
#undef GLOAD_ODD
#undef GLOAD_TAIL
#undef F16_LOAD
}

/* bf16 pairs widened in registers, as ukr_bf16_cvt does: one 512-bit load
 * holds 16 outputs at k (low halves) and k + 1 (high halves); the pair
 * stride equals 2 k steps of 32 halves. */
static ALWAYS_INLINE void gemv_bf16_body(const cpu_gemv_args *a, size_t p, const size_t m,
                                         const size_t np) {
    const __m512i hi_mask = _mm512_set1_epi32((int)0xffff0000u);
#define GLOAD_EVEN                                              \
    __m512i p0 = _mm512_load_si512((const __m512i *)pb);        \
    __m512i p1 = _mm512_load_si512((const __m512i *)pb + 1);    \
    __m512 b0 = _mm512_castsi512_ps(_mm512_slli_epi32(p0, 16)); \
    __m512 b1 = _mm512_castsi512_ps(_mm512_slli_epi32(p1, 16));
#define GLOAD_ODD                                                   \
    __m512 h0 = _mm512_castsi512_ps(_mm512_and_si512(p0, hi_mask)); \
    __m512 h1 = _mm512_castsi512_ps(_mm512_and_si512(p1, hi_mask));
#define GLOAD_TAIL GLOAD_EVEN
    GEMV_BODY(uint16_t, NR * 2)
#undef GLOAD_EVEN
#undef GLOAD_ODD
#undef GLOAD_TAIL
}

GEMV_FUNCTIONS(gemv_f32_body, gemv_f16_body, gemv_bf16_body)

/* Rows of x to bf16 pairs with round-to-nearest-even (vcvtne2ps2bf16). */
static void pack_a_bf16(const float *x, size_t ldx, size_t rows, size_t k0, size_t kc,
                        uint32_t *dst, size_t ldd) {
    for (size_t r = 0; r < rows; r++) {
        const float *src = x + r * ldx + k0;
        uint32_t *d = dst + r * ldd;
        size_t c = 0;
        for (; c + 32 <= kc; c += 32) {
            __m512 lo = _mm512_loadu_ps(src + c), hi = _mm512_loadu_ps(src + c + 16);
            _mm512_storeu_si512(d + c / 2, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
        }
        if (c < kc) {
            size_t left = kc - c;
            __mmask16 mlo = (__mmask16)(left >= 16 ? 0xffff : (1u << left) - 1);
            __mmask16 mhi = (__mmask16)(left <= 16 ? 0 : (1u << (left - 16)) - 1);
            __m512 lo = _mm512_maskz_loadu_ps(mlo, src + c);
            __m512 hi = _mm512_maskz_loadu_ps(mhi, src + c + 16);
            size_t pairs = (left + 1) / 2;
            __mmask16 mp = (__mmask16)((1u << pairs) - 1);
            _mm512_mask_storeu_epi32(d + c / 2, mp, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
        }
    }
}

const cpu_gemm_kernel cpu_gemm_avx512 = {.mr = MR,
                                         .nr = NR,
                                         .f32 = ukr_f32,
                                         .bf16 = ukr_bf16_cvt,
                                         .f16 = ukr_f16,
                                         .gemv = gemv,
                                         .quant = &cpu_quant_avx2};

const cpu_gemm_kernel cpu_gemm_avx512_bf16 = {.mr = MR,
                                              .nr = NR,
                                              .f32 = ukr_f32,
                                              .bf16 = ukr_dpbf16,
                                              .bf16_pack_a = pack_a_bf16,
                                              .f16 = ukr_f16,
                                              .gemv = gemv, /* not for bf16: see gemm.c */
                                              .quant = &cpu_quant_avx2};
