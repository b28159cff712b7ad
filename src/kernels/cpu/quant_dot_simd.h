/*
 * quant_dot_simd: the 256-bit integer dot products of quantised weights with
 * quantised activations, shared by quant_dot_avx2.c and quant_dot_avx512.c.
 *
 * Include it only from a file compiled with the matching ISA flags, after
 * defining QDOT_VNNI (1: AVX-512 VNNI with VL, 0: AVX2) and QDOT_TABLE (the
 * name of the cpu_quant_kernels to define). The one place the two differ is
 * the u8 x s8 multiply-add: AVX2 does vpmaddubsw (pairs to i16) then
 * vpmaddwd (pairs to i32, times an i16 scale); VNNI does vpdpbusd (quads
 * straight to i32) and, where a sub-block scale applies, vpmulld. The int16
 * step of AVX2 cannot saturate here: the unsigned side is at most 63 (128
 * for Q8_0's magnitudes) and the signed side at most 127 in magnitude.
 *
 * Every weight block is unpacked once into unsigned levels in element order
 * (offsets such as Q4_0's -8 or Q6_K's -32 folded back in through the
 * activation sums) and then multiplied with each of the m activation rows.
 *
 * Q8_0 has its own tiles here (quant_gemm.c has the layout and the driver):
 * int16 products through vpmaddwd, or vpdpwssd with VNNI, which sum the
 * same exact integers, so both builds give the portable tile's bits.
 */
#ifndef IA_QUANT_DOT_SIMD_H
#define IA_QUANT_DOT_SIMD_H

#include <immintrin.h>
#include <string.h>

#include "kernels/cpu/cpu_internal.h"
#include "kernels/cpu/simd_avx2.h"

#define QK_K 256
#define Q8K_BYTES 292

static inline float hsum_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Software prefetch of the weight stream, this far ahead in bytes: the
 * hardware prefetcher alone leaves a decode GEMV at a fraction of the memory
 * bandwidth (the f16 GEMV of gemm_avx2.c does the same). */
#ifndef QDOT_PREFETCH
#define QDOT_PREFETCH 2048
#endif
static inline void prefetch_block(const uint8_t *w, size_t bytes) {
    for (size_t off = 0; off < bytes; off += 64)
        _mm_prefetch((const char *)w + QDOT_PREFETCH + off, _MM_HINT_T0);
}

static inline float half_to_f32(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

/* mul_sum: 8 i32 lanes, each the sum of 4 adjacent u8 x s8 products (with
 * AVX2 the pairs pass through i16). mul_sum_scaled: the same times a scale
 * vector sc - 8 x i32 with VNNI, 16 x i16 (one per product pair) with AVX2,
 * as pick_scales16 / pick_scales32 below build it. */
#if QDOT_VNNI
static inline __m256i mul_sum_scaled(__m256i u, __m256i s, __m256i sc) {
    return _mm256_mullo_epi32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s), sc);
}
static inline __m256i mul_sum(__m256i u, __m256i s) {
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s);
}
#else
static inline __m256i mul_sum_scaled(__m256i u, __m256i s, __m256i sc) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), sc);
}
static inline __m256i mul_sum(__m256i u, __m256i s) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}
#endif

/* 32 bytes, 0x00 or `val`, from the 32 bits at p (bit i -> byte i). */
static inline __m256i bits_to_bytes(const uint8_t *p, char val) {
    uint32_t x;
    memcpy(&x, p, 4);
    const __m256i spread = _mm256_set_epi64x(0x0303030303030303ll, 0x0202020202020202ll,
                                             0x0101010101010101ll, 0x0000000000000000ll);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)x), spread);
    v = _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
    return _mm256_and_si256(v, _mm256_set1_epi8(val));
}

/* Bytes of v whose bits `mask` are all set, as 0x00 or `val`. */
static inline __m256i mask_to_bytes(__m256i v, char mask, char val) {
    const __m256i m = _mm256_set1_epi8(mask);
    return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(v, m), m), _mm256_set1_epi8(val));
}

/* ---- 32-element blocks against cpu_qa32 ----------------------------------------------- */

/* Each kernel body is instantiated for m = 1..4 as a compile-time constant
 * (QDOT_DISPATCH), so that the per-row accumulators live in registers; the
 * 32-element kernels also alternate two accumulator sets between even and
 * odd blocks, so the FMA latency does not bound a short block. */
#define ALWAYS_INLINE inline __attribute__((always_inline))
#define QDOT_DISPATCH(name, body)                                                             \
    static void name(size_t nb, const void *w, const void *a, size_t as, int m, float *out) { \
        switch (m) {                                                                          \
        case 1:                                                                               \
            body(nb, w, a, as, 1, out);                                                       \
            break;                                                                            \
        case 2:                                                                               \
            body(nb, w, a, as, 2, out);                                                       \
            break;                                                                            \
        case 3:                                                                               \
            body(nb, w, a, as, 3, out);                                                       \
            break;                                                                            \
        default:                                                                              \
            body(nb, w, a, as, 4, out);                                                       \
            break;                                                                            \
        }                                                                                     \
    }

#define QA(r, i) ((const cpu_qa32 *)((const uint8_t *)a + (size_t)(r)*a_stride) + (i))

/* One block of Q4_0 (kind 0), Q4_1 (1), Q5_0 (2), Q5_1 (3) or Q8_0 (4) into
 * acc (vector part) and corr (the offset / minimum part: dot = dw da
 * sum(u a) + mw da sum(a), with u the unsigned levels and mw = -8 dw,
 * -16 dw or the block's minimum). */
static ALWAYS_INLINE void block32(const uint8_t *w, int kind, size_t i, const void *a,
                                  size_t a_stride, const int m, __m256 *acc, __m256 *corr) {
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    float dw = half_to_f32(w), mw = 0.0f;
    __m256i u, q8 = _mm256_setzero_si256();
    if (kind == 4) {
        q8 = _mm256_loadu_si256((const __m256i *)(w + 2));
        u = _mm256_sign_epi8(q8, q8);
    } else {
        const uint8_t *qs = w + (kind == 0 ? 2 : kind == 1 ? 4 : kind == 2 ? 6 : 8);
        __m256i hbits = _mm256_setzero_si256();
        if (kind == 0)
            mw = -8.0f * dw;
        else if (kind == 2)
            mw = -16.0f * dw;
        else
            mw = half_to_f32(w + 2);
        if (kind >= 2)
            hbits = bits_to_bytes(w + (kind == 2 ? 2 : 4), 0x10);
        __m128i q = _mm_loadu_si128((const __m128i *)qs);
        u = _mm256_set_m128i(_mm_srli_epi16(q, 4), q);
        u = _mm256_or_si256(_mm256_and_si256(u, low4), hbits);
    }
    __m256 vdw = _mm256_set1_ps(dw), vmw = _mm256_set1_ps(mw);
#pragma GCC unroll 4
    for (int r = 0; r < m; r++) {
        const cpu_qa32 *ab = QA(r, i);
        __m256i s = _mm256_loadu_si256((const __m256i *)ab->qs);
        if (kind == 4)
            s = _mm256_sign_epi8(s, q8);
        __m256 p = _mm256_cvtepi32_ps(mul_sum(u, s));
        __m256 da = _mm256_broadcast_ss(&ab->d);
        acc[r] = _mm256_fmadd_ps(_mm256_mul_ps(vdw, da), p, acc[r]);
        if (kind != 4) /* lane 0 only: corr's lanes are summed at the end */
            corr[r] = _mm256_fmadd_ps(
                _mm256_mul_ps(vmw, da),
                _mm256_castps128_ps256(_mm_cvtsi32_ss(_mm_setzero_ps(), ab->sum)), corr[r]);
    }
}

static ALWAYS_INLINE void dot32_body(size_t nb, const void *wv, int kind, size_t wb, const void *a,
                                     size_t a_stride, const int m, float *out) {
    const uint8_t *w = wv;
    __m256 acc0[CPU_GEMV_MAX_M], acc1[CPU_GEMV_MAX_M], corr[CPU_GEMV_MAX_M];
#pragma GCC unroll 4
    for (int r = 0; r < m; r++)
        acc0[r] = acc1[r] = corr[r] = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 2 <= nb; i += 2) {
        _mm_prefetch((const char *)w + i * wb + QDOT_PREFETCH, _MM_HINT_T0);
        block32(w + i * wb, kind, i, a, a_stride, m, acc0, corr);
        block32(w + (i + 1) * wb, kind, i + 1, a, a_stride, m, acc1, corr);
    }
    if (i < nb)
        block32(w + i * wb, kind, i, a, a_stride, m, acc0, corr);
#pragma GCC unroll 4
    for (int r = 0; r < m; r++)
        out[r] = hsum_ps(_mm256_add_ps(_mm256_add_ps(acc0[r], acc1[r]), corr[r]));
}

#define BODY32(name, kind, wb)                                                                \
    static ALWAYS_INLINE void name##_body(size_t nb, const void *w, const void *a, size_t as, \
                                          const int m, float *out) {                          \
        dot32_body(nb, w, kind, wb, a, as, m, out);                                           \
    }                                                                                         \
    QDOT_DISPATCH(name, name##_body)
BODY32(dot_q4_0, 0, 18)
BODY32(dot_q4_1, 1, 20)
BODY32(dot_q5_0, 2, 22)
BODY32(dot_q5_1, 3, 24)
BODY32(dot_q8_0, 4, 34)

/* ---- k-quants against Q8_K -------------------------------------------------------------- */

/* Sub-block scales as vectors, one per 32 levels (vector c: elements
 * 32c..32c+31), from a block's 16 (or 8) int8 scales: for the 16-element
 * types vector c takes scales 2c (first half) and 2c+1 (second half); for
 * the 32-element types scale c. prep_scales* runs once per block,
 * pick_scales* once per vector. */
#if QDOT_VNNI
/* VNNI: 8 x i32, lanes 0-3 and 4-7. */
static const uint8_t scale_pick16[8][16] __attribute__((aligned(16))) = {
#define P(c) \
    { 2 * c, 2 * c, 2 * c, 2 * c, 2 * c + 1, 2 * c + 1, 2 * c + 1, 2 * c + 1 }
    P(0), P(1), P(2), P(3), P(4), P(5), P(6), P(7)};
#undef P
static ALWAYS_INLINE __m256i scales_of16(__m128i sc8, int c) {
    return _mm256_cvtepi8_epi32(
        _mm_shuffle_epi8(sc8, _mm_load_si128((const __m128i *)scale_pick16[c])));
}
static ALWAYS_INLINE __m256i scales_of32(__m128i sc8, int c) {
    return _mm256_cvtepi8_epi32(_mm_shuffle_epi8(sc8, _mm_set1_epi8((char)c)));
}
/* A block's scales kept as they are; each vector's are picked from them. */
static ALWAYS_INLINE __m256i prep_scales16(__m128i sc8) { return _mm256_castsi128_si256(sc8); }
static ALWAYS_INLINE __m256i prep_scales32(__m128i sc8) { return _mm256_castsi128_si256(sc8); }
static ALWAYS_INLINE __m256i pick_scales16(__m256i p, int c) {
    return scales_of16(_mm256_castsi256_si128(p), c);
}
static ALWAYS_INLINE __m256i pick_scales32(__m256i p, int c) {
    return scales_of32(_mm256_castsi256_si128(p), c);
}
#else
/* With AVX2 a block's scales are widened to i16 once (prep_*), in an order
 * where one in-lane vpshufb picks a vector's scales: for the 16-element
 * types the low lane holds the even scales and the high lane the odd ones,
 * so picking i16 element c of each lane gives 2c for elements 32c..+15 and
 * 2c+1 for 32c+16..+31; for the 32-element types both lanes hold scales
 * 0-7. This keeps the lane-crossing widening out of the inner loop. */
static ALWAYS_INLINE __m256i prep_scales16(__m128i sc8) {
    const __m128i even_odd = _mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
    return _mm256_cvtepi8_epi16(_mm_shuffle_epi8(sc8, even_odd));
}
static ALWAYS_INLINE __m256i prep_scales32(__m128i sc8) {
    return _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(sc8));
}
static ALWAYS_INLINE __m256i pick_scales16(__m256i p, int c) {
    return _mm256_shuffle_epi8(p, _mm256_set1_epi16((short)((2 * c) | ((2 * c + 1) << 8))));
}
static ALWAYS_INLINE __m256i pick_scales32(__m256i p, int c) { return pick_scales16(p, c); }
#endif

/* A block's integer sums, one per activation row: isum[r] += sc_c (u_c . a_c)
 * for the c-th 32 levels u_c; called right after each u_c is unpacked so that
 * few vectors are live at once. */
static ALWAYS_INLINE void kacc(__m256i u, __m256i sc, int c, size_t i, const void *a,
                               size_t a_stride, const int m, __m256i *isum) {
#pragma GCC unroll 4
    for (int r = 0; r < m; r++) {
        const __m256i *aq =
            (const __m256i *)((const uint8_t *)a + (size_t)r * a_stride + i * Q8K_BYTES + 4);
        isum[r] = _mm256_add_epi32(isum[r], mul_sum_scaled(u, _mm256_loadu_si256(aq + c), sc));
    }
}

/* Ends a block: acc += d da (isum + sum_j off_w[j] bsum[j]) (level offsets
 * folded into the integer sum) and acc_min += dmin da sum_j min_w[j]
 * bsum[j] (the minimums); off_w and min_w are 16 x i16, one per 16-element
 * activation sum. */
static ALWAYS_INLINE void kfinish(const __m256i *isum, __m256i off_w, bool has_off, __m256i min_w,
                                  bool has_min, float d, float dmin, size_t i, const void *a,
                                  size_t a_stride, const int m, __m256 *acc, __m256 *acc_min) {
#pragma GCC unroll 4
    for (int r = 0; r < m; r++) {
        const uint8_t *ab = (const uint8_t *)a + (size_t)r * a_stride + i * Q8K_BYTES;
        float da;
        memcpy(&da, ab, sizeof da);
        __m256i is = isum[r];
        __m256i bs = has_off || has_min ? _mm256_loadu_si256((const __m256i *)(ab + 260))
                                        : _mm256_setzero_si256();
        if (has_off)
            is = _mm256_add_epi32(is, _mm256_madd_epi16(bs, off_w));
        acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(d * da), _mm256_cvtepi32_ps(is), acc[r]);
        if (has_min)
            acc_min[r] =
                _mm256_fmadd_ps(_mm256_set1_ps(dmin * da),
                                _mm256_cvtepi32_ps(_mm256_madd_epi16(bs, min_w)), acc_min[r]);
    }
}

#define KDOT_BEGIN                                                                                 \
    __m256 acc[CPU_GEMV_MAX_M], acc_min[CPU_GEMV_MAX_M];                                           \
    __m256i isum[CPU_GEMV_MAX_M];                                                                  \
    _Pragma("GCC unroll 4") for (int r = 0; r < m; r++) acc[r] = acc_min[r] = _mm256_setzero_ps(); \
    const __m256i low4 = _mm256_set1_epi8(0x0f);                                                   \
    const __m256i low2 = _mm256_set1_epi8(0x03);                                                   \
    (void)low4;                                                                                    \
    (void)low2;

#define KBLOCK_BEGIN \
    _Pragma("GCC unroll 4") for (int r = 0; r < m; r++) isum[r] = _mm256_setzero_si256();

#define KDOT_END                                                 \
    _Pragma("GCC unroll 4") for (int r = 0; r < m; r++) out[r] = \
        hsum_ps(_mm256_sub_ps(acc[r], acc_min[r]));

#if !QDOT_VNNI
/* Q2_K's group g (vectors c = 4g .. 4g+3) for several activation rows: a
 * level (0-3) times its scale (0-15) is at most 45, so one vpmullw per
 * vector applies the scales to the weights' bytes (the products carry into
 * no neighbour byte), shared by all rows; each row then needs only
 * vpmaddubsw per vector (pairs at most 45 * 127 * 2 = 11430 in magnitude,
 * so two vectors add in i16 without overflow) and one vpmaddwd per two
 * vectors, instead of one vpmaddwd by the scales per vector. */
static ALWAYS_INLINE void q2_prescaled(__m256i q, __m256i scv, int g, size_t i, const void *a,
                                       size_t a_stride, const int m, __m256i *isum) {
    const __m256i low2 = _mm256_set1_epi8(0x03), ones = _mm256_set1_epi16(1);
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++) {
        int c0 = 4 * g + 2 * h;
        __m256i u0 = _mm256_and_si256(_mm256_srli_epi16(q, 4 * h), low2);
        __m256i u1 = _mm256_and_si256(_mm256_srli_epi16(q, 4 * h + 2), low2);
        u0 = _mm256_mullo_epi16(u0, pick_scales16(scv, c0));
        u1 = _mm256_mullo_epi16(u1, pick_scales16(scv, c0 + 1));
#pragma GCC unroll 4
        for (int r = 0; r < m; r++) {
            const __m256i *aq =
                (const __m256i *)((const uint8_t *)a + (size_t)r * a_stride + i * Q8K_BYTES + 4);
            __m256i p = _mm256_add_epi16(_mm256_maddubs_epi16(u0, _mm256_loadu_si256(aq + c0)),
                                         _mm256_maddubs_epi16(u1, _mm256_loadu_si256(aq + c0 + 1)));
            isum[r] = _mm256_add_epi32(isum[r], _mm256_madd_epi16(p, ones));
        }
    }
}
#endif

/* Q2_K and Q3_K share the 2-bit layout: the 32 bytes of group g shifted
 * right by 2s hold levels 128g + 32s .. +31, vector c = 4g + s. */
static ALWAYS_INLINE void dot_q2_k_body(size_t nb, const void *wv, const void *a, size_t a_stride,
                                        const int m, float *out) {
    const uint8_t *w = wv;
    KDOT_BEGIN
    for (size_t i = 0; i < nb; i++, w += 84) {
        KBLOCK_BEGIN
        prefetch_block(w, 84);
        __m128i raw = _mm_loadu_si128((const __m128i *)w);
        __m256i scv = prep_scales16(_mm_and_si128(raw, _mm_set1_epi8(0x0f)));
        __m256i min_w =
            _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(raw, 4), _mm_set1_epi8(0x0f)));
#pragma GCC unroll 2
        for (int g = 0; g < 2; g++) {
            __m256i q = _mm256_loadu_si256((const __m256i *)(w + 16 + 32 * g));
#if !QDOT_VNNI
            if (m > 1) {
                q2_prescaled(q, scv, g, i, a, a_stride, m, isum);
                continue;
            }
#endif
#pragma GCC unroll 4
            for (int s = 0; s < 4; s++)
                kacc(_mm256_and_si256(_mm256_srli_epi16(q, 2 * s), low2),
                     pick_scales16(scv, 4 * g + s), 4 * g + s, i, a, a_stride, m, isum);
        }
        kfinish(isum, min_w, false, min_w, true, half_to_f32(w + 80), half_to_f32(w + 82), i, a,
                a_stride, m, acc, acc_min);
    }
    KDOT_END
}

/* Q3_K's 16 6-bit scales (12 bytes) as 16 bytes, still biased by 32: low
 * nibbles from bytes 0-7, the two high bits from bytes 8-11. */
static inline __m128i q3_scales(const uint8_t *s) {
    uint32_t w0, w1, w2;
    memcpy(&w0, s, 4);
    memcpy(&w1, s + 4, 4);
    memcpy(&w2, s + 8, 4);
    const uint32_t m4 = 0x0f0f0f0fu, m2 = 0x03030303u;
    uint32_t o0 = (w0 & m4) | (((w2 >> 0) & m2) << 4);
    uint32_t o1 = (w1 & m4) | (((w2 >> 2) & m2) << 4);
    uint32_t o2 = ((w0 >> 4) & m4) | (((w2 >> 4) & m2) << 4);
    uint32_t o3 = ((w1 >> 4) & m4) | (((w2 >> 6) & m2) << 4);
    return _mm_sub_epi8(_mm_set_epi32((int)o3, (int)o2, (int)o1, (int)o0), _mm_set1_epi8(32));
}

static ALWAYS_INLINE void dot_q3_k_body(size_t nb, const void *wv, const void *a, size_t a_stride,
                                        const int m, float *out) {
    const uint8_t *w = wv;
    KDOT_BEGIN
    for (size_t i = 0; i < nb; i++, w += 110) {
        KBLOCK_BEGIN
        prefetch_block(w, 110);
        __m128i sc8 = q3_scales(w + 96);
        /* levels are stored + 4: subtract 4 sc_j bsum_j */
        __m256i off_w = _mm256_mullo_epi16(_mm256_cvtepi8_epi16(sc8), _mm256_set1_epi16(-4));
        __m256i scv = prep_scales16(sc8);
        __m256i hm = _mm256_loadu_si256((const __m256i *)w);
#pragma GCC unroll 2
        for (int g = 0; g < 2; g++) {
            __m256i q = _mm256_loadu_si256((const __m256i *)(w + 32 + 32 * g));
#pragma GCC unroll 4
            for (int s = 0; s < 4; s++) {
                int c = 4 * g + s;
                __m256i u = _mm256_and_si256(_mm256_srli_epi16(q, 2 * s), low2);
                /* bit c of each hmask byte moved to bit 2 (value 4): the
                 * 16-bit shifts bring no bits from the neighbour byte
                 * into bit 2 for these distances */
                __m256i h = c < 2    ? _mm256_slli_epi16(hm, 2 - c)
                            : c == 2 ? hm
                                     : _mm256_srli_epi16(hm, c - 2);
                u = _mm256_or_si256(u, _mm256_and_si256(h, _mm256_set1_epi8(4)));
                kacc(u, pick_scales16(scv, c), c, i, a, a_stride, m, isum);
            }
        }
        kfinish(isum, off_w, true, off_w, false, half_to_f32(w + 108), 0.0f, i, a, a_stride, m, acc,
                acc_min);
    }
    KDOT_END
}

/* Q4_K/Q5_K's 8 scales and 8 minimums (6 bits each, 12 bytes) as bytes:
 * *sc8 = scales 0-7, *mn8 = minimums 0-7. */
static inline void k4_scales(const uint8_t *s, __m128i *sc8, __m128i *mn8) {
    uint32_t w0, w1, w2;
    memcpy(&w0, s, 4);
    memcpy(&w1, s + 4, 4);
    memcpy(&w2, s + 8, 4);
    const uint32_t m6 = 0x3f3f3f3fu, m4 = 0x0f0f0f0fu, m2 = 0x03030303u;
    uint32_t sc_lo = w0 & m6, mn_lo = w1 & m6;
    uint32_t sc_hi = (w2 & m4) | (((w0 >> 6) & m2) << 4);
    uint32_t mn_hi = ((w2 >> 4) & m4) | (((w1 >> 6) & m2) << 4);
    *sc8 = _mm_set_epi32(0, 0, (int)sc_hi, (int)sc_lo);
    *mn8 = _mm_set_epi32(0, 0, (int)mn_hi, (int)mn_lo);
}

/* Q4_K / Q5_K: the 32 bytes of chunk c hold levels 64c .. +31 (low
 * nibbles, sub-block 2c) and 64c + 32 .. +63 (high, 2c + 1); Q5_K's fifth
 * bit of sub-block j is bit j of qh. */
static ALWAYS_INLINE void dot_k4(size_t nb, const uint8_t *w, bool five, const void *a,
                                 size_t a_stride, const int m, float *out) {
    KDOT_BEGIN
    size_t wb = five ? 176 : 144;
    /* minimum j weighs the two 16-sums of sub-block j */
    const __m128i dup = _mm_set_epi8(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);
    for (size_t i = 0; i < nb; i++, w += wb) {
        KBLOCK_BEGIN
        prefetch_block(w, wb);
        __m128i sc8, mn8;
        k4_scales(w + 4, &sc8, &mn8);
        __m256i scv = prep_scales32(sc8);
        __m256i min_w = _mm256_cvtepu8_epi16(_mm_shuffle_epi8(mn8, dup));
        const uint8_t *qs = w + (five ? 48 : 16);
        __m256i qh = five ? _mm256_loadu_si256((const __m256i *)(w + 16)) : _mm256_setzero_si256();
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++) {
            __m256i q = _mm256_loadu_si256((const __m256i *)(qs + 32 * c));
            __m256i lo = _mm256_and_si256(q, low4);
            __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), low4);
            if (five) {
                lo = _mm256_or_si256(lo, mask_to_bytes(qh, (char)(1 << (2 * c)), 16));
                hi = _mm256_or_si256(hi, mask_to_bytes(qh, (char)(2 << (2 * c)), 16));
            }
            kacc(lo, pick_scales32(scv, 2 * c), 2 * c, i, a, a_stride, m, isum);
            kacc(hi, pick_scales32(scv, 2 * c + 1), 2 * c + 1, i, a, a_stride, m, isum);
        }
        kfinish(isum, min_w, false, min_w, true, half_to_f32(w), half_to_f32(w + 2), i, a, a_stride,
                m, acc, acc_min);
    }
    KDOT_END
}

static ALWAYS_INLINE void dot_q4_k_body(size_t nb, const void *w, const void *a, size_t as,
                                        const int m, float *out) {
    dot_k4(nb, w, false, a, as, m, out);
}
static ALWAYS_INLINE void dot_q5_k_body(size_t nb, const void *w, const void *a, size_t as,
                                        const int m, float *out) {
    dot_k4(nb, w, true, a, as, m, out);
}
QDOT_DISPATCH(dot_q4_k, dot_q4_k_body)
QDOT_DISPATCH(dot_q5_k, dot_q5_k_body)

/* Q6_K: per group g of 128 levels, ql bytes 64g .. +63 and qh bytes
 * 32g .. +31; levels 128g + 32s .. +31 take the low (s < 2) or high nibble
 * of ql[64g + 32 (s & 1) ..] and bits 2s, 2s + 1 of qh. */
static ALWAYS_INLINE void dot_q6_k_body(size_t nb, const void *wv, const void *a, size_t a_stride,
                                        const int m, float *out) {
    const uint8_t *w = wv;
    KDOT_BEGIN
    for (size_t i = 0; i < nb; i++, w += 210) {
        KBLOCK_BEGIN
        prefetch_block(w, 210);
        __m128i sc8 = _mm_loadu_si128((const __m128i *)(w + 192));
        /* levels are stored + 32: subtract 32 sc_j bsum_j */
        __m256i off_w = _mm256_slli_epi16(_mm256_cvtepi8_epi16(sc8), 5);
        off_w = _mm256_sub_epi16(_mm256_setzero_si256(), off_w);
        __m256i scv = prep_scales16(sc8);
#pragma GCC unroll 2
        for (int g = 0; g < 2; g++) {
            __m256i l0 = _mm256_loadu_si256((const __m256i *)(w + 64 * g));
            __m256i l1 = _mm256_loadu_si256((const __m256i *)(w + 64 * g + 32));
            __m256i h = _mm256_loadu_si256((const __m256i *)(w + 128 + 32 * g));
#pragma GCC unroll 4
            for (int s = 0; s < 4; s++) {
                __m256i l = s & 1 ? l1 : l0;
                __m256i lo = _mm256_and_si256(s < 2 ? l : _mm256_srli_epi16(l, 4), low4);
                /* bits 2s, 2s+1 of qh to bits 4, 5 (the 16-bit shifts
                 * bring no neighbour bits there for these distances) */
                __m256i hs = s < 2    ? _mm256_slli_epi16(h, 4 - 2 * s)
                             : s == 2 ? h
                                      : _mm256_srli_epi16(h, 2);
                __m256i hi = _mm256_and_si256(hs, _mm256_set1_epi8(0x30));
                kacc(_mm256_or_si256(lo, hi), pick_scales16(scv, 4 * g + s), 4 * g + s, i, a,
                     a_stride, m, isum);
            }
        }
        kfinish(isum, off_w, true, off_w, false, half_to_f32(w + 208), 0.0f, i, a, a_stride, m, acc,
                acc_min);
    }
    KDOT_END
}

QDOT_DISPATCH(dot_q2_k, dot_q2_k_body)
QDOT_DISPATCH(dot_q3_k, dot_q3_k_body)
QDOT_DISPATCH(dot_q6_k, dot_q6_k_body)

/* ---- Q8_0 tiles (quant_gemm.c) ------------------------------------------------------------ */

/* mr activation rows x 16 outputs (two interleaved groups of 8) over all
 * blocks: per pair p of a block, one sign-extending load gives 8 outputs x 2
 * levels of each group, and vpmaddwd with the row's broadcast levels 2p, 2p+1
 * adds 8 exact i32 products (with VNNI, vpdpwssd fuses the add); the block
 * ends with acc = fma(dw da, isum, acc) per output, as the portable tile. */
static ALWAYS_INLINE __m256i madd_acc(__m256i acc, __m256i w, __m256i a) {
#if QDOT_VNNI
    return _mm256_dpwssd_epi32(acc, w, a);
#else
    return _mm256_add_epi32(acc, _mm256_madd_epi16(w, a));
#endif
}

/* The integer accumulators are named variables (an array of them passed
 * around stays in memory); the float sums live in t->out, read and written
 * once per block. Q8_ROWS expands a statement for rows 0..3; a row at or
 * past the constant mr folds away. */
#define Q8_ROWS(X) X(0) X(1) X(2) X(3)
#define Q8_ZERO(i) __m256i s##i##0 = _mm256_setzero_si256(), s##i##1 = _mm256_setzero_si256();
#define Q8_ROWPTR(i) const int16_t *a##i = t->a + (size_t)(i < mr ? i : 0) * lda;
#define Q8_MADD(i, p)                                        \
    if (i < mr) {                                            \
        int32_t v##i;                                        \
        memcpy(&v##i, a##i + b * 32 + 2 * (p), sizeof v##i); \
        __m256i av##i = _mm256_set1_epi32(v##i);             \
        s##i##0 = madd_acc(s##i##0, x0, av##i);              \
        s##i##1 = madd_acc(s##i##1, x1, av##i);              \
    }
#define Q8_STEP(i) Q8_MADD(i, p)
#define Q8_FLOAT(i)                                                                             \
    if (i < mr) {                                                                               \
        __m256 da = _mm256_broadcast_ss(t->ad + (size_t)i * ldd + b);                           \
        float *o = t->out + (size_t)i * t->ldo;                                                 \
        _mm256_storeu_ps(o, _mm256_fmadd_ps(_mm256_mul_ps(d0, da), _mm256_cvtepi32_ps(s##i##0), \
                                            _mm256_loadu_ps(o)));                               \
        _mm256_storeu_ps(o + 8,                                                                 \
                         _mm256_fmadd_ps(_mm256_mul_ps(d1, da), _mm256_cvtepi32_ps(s##i##1),    \
                                         _mm256_loadu_ps(o + 8)));                              \
    }

static ALWAYS_INLINE void q8_0_tile_body(const cpu_q8_0_tile *t, const int mr) {
    const size_t nb = t->nb, lda = t->lda, ldd = t->ldd;
    const uint8_t *w0 = t->w, *w1 = t->w + nb * CPU_Q8X8_BYTES;
    Q8_ROWS(Q8_ROWPTR)
    for (int i = 0; i < mr; i++) {
        _mm256_storeu_ps(t->out + (size_t)i * t->ldo, _mm256_setzero_ps());
        _mm256_storeu_ps(t->out + (size_t)i * t->ldo + 8, _mm256_setzero_ps());
    }
    for (size_t b = 0; b < nb; b++, w0 += CPU_Q8X8_BYTES, w1 += CPU_Q8X8_BYTES) {
        if (t->prefetch) {
            prefetch_block(w0, CPU_Q8X8_BYTES);
            prefetch_block(w1, CPU_Q8X8_BYTES);
        }
        Q8_ROWS(Q8_ZERO)
#pragma GCC unroll 2
        for (int p = 0; p < 16; p++) {
            __m256i x0 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(w0 + 16 + 16 * p)));
            __m256i x1 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(w1 + 16 + 16 * p)));
            Q8_ROWS(Q8_STEP)
        }
        __m256 d0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)w0));
        __m256 d1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)w1));
        Q8_ROWS(Q8_FLOAT)
    }
    if (!t->bias && t->act == IA_ACT_NONE)
        return;
    __m256 b0 = t->bias ? _mm256_loadu_ps(t->bias) : _mm256_setzero_ps();
    __m256 b1 = t->bias ? _mm256_loadu_ps(t->bias + 8) : _mm256_setzero_ps();
    for (int i = 0; i < mr; i++) {
        float *o = t->out + (size_t)i * t->ldo;
        __m256 v0 = _mm256_loadu_ps(o), v1 = _mm256_loadu_ps(o + 8);
        if (t->bias) {
            v0 = _mm256_add_ps(v0, b0);
            v1 = _mm256_add_ps(v1, b1);
        }
        _mm256_storeu_ps(o, v_act(t->act, v0));
        _mm256_storeu_ps(o + 8, v_act(t->act, v1));
    }
}

static void q8_0_tile(const cpu_q8_0_tile *t) {
    switch (t->mr) {
    case 1:
        q8_0_tile_body(t, 1);
        break;
    case 2:
        q8_0_tile_body(t, 2);
        break;
    case 3:
        q8_0_tile_body(t, 3);
        break;
    default:
        q8_0_tile_body(t, 4);
        break;
    }
}

/* ---- activation quantisers --------------------------------------------------------------- */

/* The largest |x| of n floats (n a multiple of 32); NaNs are passed over as
 * fmaxf does (vmaxps returns its second operand when either is NaN). */
static inline float amax_ps(const float *x, size_t n) {
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    __m256 m0 = _mm256_setzero_ps(), m1 = _mm256_setzero_ps();
    for (size_t j = 0; j < n; j += 16) {
        m0 = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(x + j), abs_mask), m0);
        m1 = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(x + j + 8), abs_mask), m1);
    }
    __m256 m = _mm256_max_ps(m0, m1);
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
}

/* 32 floats times id, clamped to +-127 and rounded to nearest even (the
 * default MXCSR mode, as lrintf and cpu_quantize_*'s rounding), as 32 int8
 * in element order. A NaN product becomes 127 as fminf / fmaxf make it, or
 * 0 where nan_zero (cpu_quantize_qa32 tests for NaN first). */
static inline __m256i quant32(const float *x, __m256 id, bool nan_zero) {
    const __m256 hi = _mm256_set1_ps(127.0f), lo = _mm256_set1_ps(-127.0f);
    __m256i q[4];
    for (int j = 0; j < 4; j++) {
        __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + 8 * j), id);
        __m256 c = _mm256_max_ps(_mm256_min_ps(v, hi), lo); /* NaN -> 127 */
        if (nan_zero)
            c = _mm256_and_ps(c, _mm256_cmp_ps(v, v, _CMP_ORD_Q));
        q[j] = _mm256_cvtps_epi32(c);
    }
    __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
    return _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

/* Sums of bytes 0-7, 8-15, 16-23 and 24-31 of 32 int8 (in 64-bit lanes). */
static inline __m256i sums8_epi8(__m256i q) {
    const __m256i bias = _mm256_set1_epi8((char)0x80);
    return _mm256_sub_epi64(_mm256_sad_epu8(_mm256_xor_si256(q, bias), _mm256_setzero_si256()),
                            _mm256_set1_epi64x(8 * 128));
}

static void quantize_qa32_simd(const float *x, cpu_qa32 *dst, size_t k) {
    for (size_t b = 0; b < k / 32; b++, x += 32) {
        float amax = amax_ps(x, 32);
        float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        __m256i q = quant32(x, _mm256_set1_ps(id), true);
        _mm256_storeu_si256((__m256i *)dst[b].qs, q);
        __m256i s = sums8_epi8(q);
        __m128i s2 = _mm_add_epi64(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
        s2 = _mm_add_epi64(s2, _mm_unpackhi_epi64(s2, s2));
        dst[b].d = d;
        dst[b].sum = (int32_t)_mm_cvtsi128_si64(s2);
    }
}

/* quantize_qa32_simd's levels and scales for quant_gemm.c: levels widened
 * to int16, no sums. */
static void quantize_q8_0_i16_simd(const float *x, int16_t *q, float *d, size_t k) {
    for (size_t b = 0; b < k / 32; b++, x += 32, q += 32) {
        float amax = amax_ps(x, 32);
        float s = amax / 127.0f, id = s != 0.0f ? 1.0f / s : 0.0f;
        __m256i v = quant32(x, _mm256_set1_ps(id), true);
        _mm256_storeu_si256((__m256i *)q, _mm256_cvtepi8_epi16(_mm256_castsi256_si128(v)));
        _mm256_storeu_si256((__m256i *)(q + 16),
                            _mm256_cvtepi8_epi16(_mm256_extracti128_si256(v, 1)));
        d[b] = s;
    }
}

static void quantize_q8k_simd(const float *x, void *dst, size_t k) {
    uint8_t *out = dst;
    for (size_t b = 0; b < k / QK_K; b++, x += QK_K, out += Q8K_BYTES) {
        float amax = amax_ps(x, QK_K);
        float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        __m256 vid = _mm256_set1_ps(id);
        int16_t sums[16];
        for (int j = 0; j < QK_K / 32; j++) {
            __m256i q = quant32(x + 32 * j, vid, false);
            _mm256_storeu_si256((__m256i *)(out + 4 + 32 * j), q);
            __m256i s = sums8_epi8(q);
            int64_t l[4];
            _mm256_storeu_si256((__m256i *)l, s);
            sums[2 * j] = (int16_t)(l[0] + l[1]);
            sums[2 * j + 1] = (int16_t)(l[2] + l[3]);
        }
        memcpy(out, &d, sizeof d);
        memcpy(out + 260, sums, sizeof sums);
    }
}

const cpu_quant_kernels QDOT_TABLE = {.q8_0_tile = q8_0_tile,
                                      .quantize_q8_0_i16 = quantize_q8_0_i16_simd,
                                      .quantize_qa32 = quantize_qa32_simd,
                                      .quantize_q8k = quantize_q8k_simd,
                                      .dot = {
                                          [IA_DTYPE_Q4_0] = dot_q4_0,
                                          [IA_DTYPE_Q4_1] = dot_q4_1,
                                          [IA_DTYPE_Q5_0] = dot_q5_0,
                                          [IA_DTYPE_Q5_1] = dot_q5_1,
                                          [IA_DTYPE_Q8_0] = dot_q8_0,
                                          [IA_DTYPE_Q2_K] = dot_q2_k,
                                          [IA_DTYPE_Q3_K] = dot_q3_k,
                                          [IA_DTYPE_Q4_K] = dot_q4_k,
                                          [IA_DTYPE_Q5_K] = dot_q5_k,
                                          [IA_DTYPE_Q6_K] = dot_q6_k,
                                      }};

#endif /* IA_QUANT_DOT_SIMD_H */
