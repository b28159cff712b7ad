/*
 * quant: the portable reference of the ggml block formats.
 *
 * Each type has a block decoder and a block encoder written from ggml's
 * published block layouts (ggml-common.h). Decoding does the same float
 * operations in the same order as ggml's to_float, so a block decodes to the
 * same bits here and in llama.cpp. Encoding:
 *   - Q8_0, Q4_0, Q4_1, Q5_0, Q5_1: the deterministic round-to-nearest
 *     encoders of ggml's reference path, byte for byte.
 *   - Q2_K .. Q6_K: per sub-block scale (and minimum) searches of the same
 *     kind as ggml's reference (a weighted least-squares fit of scale and
 *     minimum over a sweep of candidate inverse scales for the types with a
 *     minimum; a sweep of scales around the absolute maximum, or a greedy
 *     refinement, for the symmetric ones), then the sub-block scales are
 *     themselves quantised against one f16 super-block scale and the values
 *     re-rounded against the scales actually stored. The searches follow
 *     ggml's reference step for step, float operations in the same order, so
 *     the bytes match llama.cpp's reference quantiser (checked on the test
 *     fixtures); the contract only promises an error no worse than it.
 *   - Q8_K: f32 scale, int8 values and per-16 sums: the activation side of
 *     the k-quant dot products.
 *
 * Multi-byte fields are little-endian in files; they are read and written
 * byte by byte so that nothing here depends on host order or alignment.
 */
#include "ia/quant.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ia/formats.h"

/* ---- small helpers ------------------------------------------------------- */

static inline uint16_t rd_u16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline float rd_half(const uint8_t *p) { return ia_f16_to_f32(rd_u16(p)); }
static inline void wr_half(uint8_t *p, float f) {
    uint16_t h = ia_f32_to_f16(f);
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}
static inline uint32_t rd_u32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline void wr_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static inline float rd_f32(const uint8_t *p) {
    uint32_t u = rd_u32(p);
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}
static inline void wr_f32(uint8_t *p, float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    wr_u32(p, u);
}

static inline int imin(int a, int b) { return a < b ? a : b; }
static inline int imax(int a, int b) { return a > b ? a : b; }

/* Round to nearest, ties to even, for |v| < 2^22: adding 1.5 * 2^23 leaves
 * the integer in the low mantissa bits (the rounding the k-quant reference
 * uses; roundf would round ties away from zero). */
static inline int round_even(float v) {
    float t = v + 12582912.0f;
    int32_t i;
    memcpy(&i, &t, sizeof i);
    return (i & 0x007fffff) - 0x00400000;
}

/* Sub-block scale and minimum of a Q4_K/Q5_K block: 6 bits each, sub-blocks
 * 0-3 in the low bits of bytes 0-3 (scale) and 4-7 (minimum), 4-7 split
 * over the nibbles of bytes 8-11 and the top two bits of bytes 0-7. */
static inline void k4_scale_min(const uint8_t *s, int j, int *sc, int *mn) {
    if (j < 4) {
        *sc = s[j] & 63;
        *mn = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0xf) | ((s[j - 4] >> 6) << 4);
        *mn = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

static inline void k4_scale_min_put(uint8_t *s, int j, int sc, int mn) {
    if (j < 4) {
        s[j] = (uint8_t)sc;
        s[j + 4] = (uint8_t)mn;
    } else {
        s[j + 4] = (uint8_t)((sc & 0xf) | ((mn & 0xf) << 4));
        s[j - 4] |= (uint8_t)((sc >> 4) << 6);
        s[j] |= (uint8_t)((mn >> 4) << 6);
    }
}

/* The 16 signed 6-bit scales of a Q3_K block, unpacked (each - 32 added
 * back by the caller): low nibbles in bytes 0-7 (sub-blocks 0-7 low, 8-15
 * high nibble), high two bits in bytes 8-11. */
static inline int k3_scale(const uint8_t *s, int j) {
    int lo = j < 8 ? s[j] & 0xf : s[j - 8] >> 4;
    int hi = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
    return (lo | (hi << 4)) - 32;
}

/* ---- decoders (one block) ----------------------------------------------------- */

static void dq_q4_0(const uint8_t *b, float *y) {
    float d = rd_half(b);
    for (int j = 0; j < 16; j++) {
        y[j] = (float)((b[2 + j] & 0xf) - 8) * d;
        y[j + 16] = (float)((b[2 + j] >> 4) - 8) * d;
    }
}

static void dq_q4_1(const uint8_t *b, float *y) {
    float d = rd_half(b), m = rd_half(b + 2);
    for (int j = 0; j < 16; j++) {
        y[j] = (float)(b[4 + j] & 0xf) * d + m;
        y[j + 16] = (float)(b[4 + j] >> 4) * d + m;
    }
}

static void dq_q5_0(const uint8_t *b, float *y) {
    float d = rd_half(b);
    uint32_t qh = rd_u32(b + 2);
    for (int j = 0; j < 16; j++) {
        int h0 = (int)((qh >> j) & 1) << 4, h1 = (int)((qh >> (j + 16)) & 1) << 4;
        y[j] = (float)(((b[6 + j] & 0xf) | h0) - 16) * d;
        y[j + 16] = (float)(((b[6 + j] >> 4) | h1) - 16) * d;
    }
}

static void dq_q5_1(const uint8_t *b, float *y) {
    float d = rd_half(b), m = rd_half(b + 2);
    uint32_t qh = rd_u32(b + 4);
    for (int j = 0; j < 16; j++) {
        int h0 = (int)((qh >> j) & 1) << 4, h1 = (int)((qh >> (j + 16)) & 1) << 4;
        y[j] = (float)((b[8 + j] & 0xf) | h0) * d + m;
        y[j + 16] = (float)((b[8 + j] >> 4) | h1) * d + m;
    }
}

static void dq_q8_0(const uint8_t *b, float *y) {
    float d = rd_half(b);
    for (int j = 0; j < 32; j++)
        y[j] = (float)(int8_t)b[2 + j] * d;
}

/* Q2_K: scales[16] (scale low nibble, minimum high), qs[64], d, dmin. Each
 * group of 128 values uses 32 bytes of qs: value l + 32 * s of the group is
 * bits 2s..2s+1 of byte l; sub-block (16 values) j has scales[j]. */
static void dq_q2_k(const uint8_t *b, float *y) {
    float d = rd_half(b + 80), dmin = rd_half(b + 82);
    for (int g = 0; g < 2; g++) {
        const uint8_t *q = b + 16 + 32 * g;
        for (int s = 0; s < 4; s++) {
            for (int h = 0; h < 2; h++) {
                uint8_t sc = b[g * 8 + s * 2 + h];
                float dl = d * (float)(sc & 0xf), ml = dmin * (float)(sc >> 4);
                for (int l = 0; l < 16; l++)
                    *y++ = dl * (float)((q[16 * h + l] >> (2 * s)) & 3) - ml;
            }
        }
    }
}

/* Q3_K: hmask[32], qs[64], scales[12], d. Low two bits as Q2_K; the third
 * bit of value i of group g, shift s is bit (4g + s) of hmask[i % 32], and a
 * clear bit subtracts 4. */
static void dq_q3_k(const uint8_t *b, float *y) {
    float d = rd_half(b + 108);
    const uint8_t *hm = b, *sc = b + 96;
    for (int g = 0; g < 2; g++) {
        const uint8_t *q = b + 32 + 32 * g;
        for (int s = 0; s < 4; s++) {
            uint8_t bit = (uint8_t)(1u << (4 * g + s));
            for (int h = 0; h < 2; h++) {
                float dl = d * (float)k3_scale(sc, g * 8 + s * 2 + h);
                for (int l = 0; l < 16; l++) {
                    int i = 16 * h + l;
                    int v = ((q[i] >> (2 * s)) & 3) - ((hm[i] & bit) ? 0 : 4);
                    *y++ = dl * (float)v;
                }
            }
        }
    }
}

/* Q4_K: d, dmin, scales[12], qs[128]. Each 64 values use 32 bytes: the first
 * 32 the low nibbles (sub-block 2c), the next 32 the high (sub-block 2c+1). */
static void dq_q4_k(const uint8_t *b, float *y) {
    float d = rd_half(b), dmin = rd_half(b + 2);
    const uint8_t *q = b + 16;
    for (int c = 0; c < 4; c++, q += 32) {
        int sc, mn;
        k4_scale_min(b + 4, 2 * c, &sc, &mn);
        float d1 = d * (float)sc, m1 = dmin * (float)mn;
        k4_scale_min(b + 4, 2 * c + 1, &sc, &mn);
        float d2 = d * (float)sc, m2 = dmin * (float)mn;
        for (int l = 0; l < 32; l++)
            *y++ = d1 * (float)(q[l] & 0xf) - m1;
        for (int l = 0; l < 32; l++)
            *y++ = d2 * (float)(q[l] >> 4) - m2;
    }
}

/* Q5_K: Q4_K plus qh[32]: the fifth bit of value l of sub-block j is bit j
 * of qh[l]. */
static void dq_q5_k(const uint8_t *b, float *y) {
    float d = rd_half(b), dmin = rd_half(b + 2);
    const uint8_t *qh = b + 16, *q = b + 48;
    for (int c = 0; c < 4; c++, q += 32) {
        int sc, mn;
        k4_scale_min(b + 4, 2 * c, &sc, &mn);
        float d1 = d * (float)sc, m1 = dmin * (float)mn;
        k4_scale_min(b + 4, 2 * c + 1, &sc, &mn);
        float d2 = d * (float)sc, m2 = dmin * (float)mn;
        uint8_t u1 = (uint8_t)(1u << (2 * c)), u2 = (uint8_t)(2u << (2 * c));
        for (int l = 0; l < 32; l++)
            *y++ = d1 * (float)((q[l] & 0xf) + ((qh[l] & u1) ? 16 : 0)) - m1;
        for (int l = 0; l < 32; l++)
            *y++ = d2 * (float)((q[l] >> 4) + ((qh[l] & u2) ? 16 : 0)) - m2;
    }
}

/* Q6_K: ql[128], qh[64], scales[16] (int8), d. Per 128 values (64 bytes of
 * ql, 32 of qh): value l + 32 s takes the low (s < 2) or high nibble of
 * ql[l + 32 (s & 1)] and bits 2s..2s+1 of qh[l]; minus 32. */
static void dq_q6_k(const uint8_t *b, float *y) {
    float d = rd_half(b + 208);
    const int8_t *sc = (const int8_t *)(b + 192);
    for (int g = 0; g < 2; g++) {
        const uint8_t *ql = b + 64 * g, *qh = b + 128 + 32 * g;
        for (int l = 0; l < 32; l++) {
            int is = l / 16;
            int q1 = ((ql[l] & 0xf) | (((qh[l] >> 0) & 3) << 4)) - 32;
            int q2 = ((ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4)) - 32;
            int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            y[l] = d * (float)sc[8 * g + is] * (float)q1;
            y[l + 32] = d * (float)sc[8 * g + is + 2] * (float)q2;
            y[l + 64] = d * (float)sc[8 * g + is + 4] * (float)q3;
            y[l + 96] = d * (float)sc[8 * g + is + 6] * (float)q4;
        }
        y += 128;
    }
}

static void dq_q8_k(const uint8_t *b, float *y) {
    float d = rd_f32(b);
    for (int j = 0; j < 256; j++)
        y[j] = d * (float)(int8_t)b[4 + j];
}

/* ---- encoders: the simple types (ggml's reference, byte for byte) ------------ */

/* The value of largest magnitude (the first one on ties), keeping its sign. */
static float signed_absmax(const float *x, int n) {
    float amax = 0.0f, max = 0.0f;
    for (int i = 0; i < n; i++)
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            max = x[i];
        }
    return max;
}

static void q_q4_0(const float *x, uint8_t *b) {
    float d = signed_absmax(x, 32) / -8.0f;
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    wr_half(b, d);
    for (int j = 0; j < 16; j++) {
        int v0 = imin(15, (int8_t)(x[j] * id + 8.5f));
        int v1 = imin(15, (int8_t)(x[j + 16] * id + 8.5f));
        b[2 + j] = (uint8_t)(v0 | (v1 << 4));
    }
}

static void min_max(const float *x, int n, float *lo, float *hi) {
    *lo = INFINITY;
    *hi = -INFINITY;
    for (int i = 0; i < n; i++) {
        if (x[i] < *lo)
            *lo = x[i];
        if (x[i] > *hi)
            *hi = x[i];
    }
}

static void q_q4_1(const float *x, uint8_t *b) {
    float lo, hi;
    min_max(x, 32, &lo, &hi);
    float d = (hi - lo) / 15.0f;
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    wr_half(b, d);
    wr_half(b + 2, lo);
    for (int j = 0; j < 16; j++) {
        int v0 = imin(15, (int8_t)((x[j] - lo) * id + 0.5f));
        int v1 = imin(15, (int8_t)((x[j + 16] - lo) * id + 0.5f));
        b[4 + j] = (uint8_t)(v0 | (v1 << 4));
    }
}

static void q_q5_0(const float *x, uint8_t *b) {
    float d = signed_absmax(x, 32) / -16.0f;
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    uint32_t qh = 0;
    wr_half(b, d);
    for (int j = 0; j < 16; j++) {
        int v0 = imin(31, (int8_t)(x[j] * id + 16.5f));
        int v1 = imin(31, (int8_t)(x[j + 16] * id + 16.5f));
        b[6 + j] = (uint8_t)((v0 & 0xf) | ((v1 & 0xf) << 4));
        qh |= (uint32_t)((v0 >> 4) & 1) << j;
        qh |= (uint32_t)((v1 >> 4) & 1) << (j + 16);
    }
    wr_u32(b + 2, qh);
}

static void q_q5_1(const float *x, uint8_t *b) {
    float lo, hi;
    min_max(x, 32, &lo, &hi);
    float d = (hi - lo) / 31.0f;
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    uint32_t qh = 0;
    wr_half(b, d);
    wr_half(b + 2, lo);
    for (int j = 0; j < 16; j++) {
        int v0 = (uint8_t)((x[j] - lo) * id + 0.5f);
        int v1 = (uint8_t)((x[j + 16] - lo) * id + 0.5f);
        b[8 + j] = (uint8_t)((v0 & 0xf) | ((v1 & 0xf) << 4));
        qh |= (uint32_t)((v0 >> 4) & 1) << j;
        qh |= (uint32_t)((v1 >> 4) & 1) << (j + 16);
    }
    wr_u32(b + 4, qh);
}

static void q_q8_0(const float *x, uint8_t *b) {
    float amax = 0.0f;
    for (int j = 0; j < 32; j++)
        amax = fmaxf(amax, fabsf(x[j]));
    float d = amax / 127.0f;
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    wr_half(b, d);
    for (int j = 0; j < 32; j++)
        b[2 + j] = (uint8_t)(int8_t)roundf(x[j] * id);
}

/* ---- encoders: the k-quants ---------------------------------------------------- */

#define K_TINY 1e-15f /* below this a sub-block is all zeros */

/* Asymmetric fit of n values to levels 0..nmax: value ~ scale * L - offset,
 * offset >= 0 (minimum <= 0). Starts from the min-max grid, then tries
 * nstep + 1 inverse scales (nmax + rmin + rdelta * i) / (max - min), each
 * followed by the weighted least-squares scale and offset of its levels,
 * keeping the one with the least weighted error (absolute when use_abs,
 * else squared). Returns the scale; *offset is the positive minimum. */
static float fit_scale_offset(int n, int nmax, const float *x, const float *w, uint8_t *L,
                              float *offset, float rmin, float rdelta, int nstep, bool use_abs) {
    float lo = x[0], hi = x[0], sw = w[0], sx = w[0] * x[0];
    for (int i = 1; i < n; i++) {
        lo = fminf(lo, x[i]);
        hi = fmaxf(hi, x[i]);
        sw += w[i];
        sx += w[i] * x[i];
    }
    if (lo > 0.0f)
        lo = 0.0f;
    if (hi == lo) {
        memset(L, 0, (size_t)n);
        *offset = -lo;
        return 0.0f;
    }
    float inv = (float)nmax / (hi - lo), scale = 1.0f / inv, best = 0.0f;
    for (int i = 0; i < n; i++) {
        int l = imax(0, imin(nmax, round_even(inv * (x[i] - lo))));
        L[i] = (uint8_t)l;
        float e = scale * (float)l + lo - x[i];
        best += w[i] * (use_abs ? fabsf(e) : e * e);
    }
    uint8_t cand[32];
    for (int step = 0; step <= nstep; step++) {
        float is = (rmin + rdelta * (float)step + (float)nmax) / (hi - lo);
        float sl = 0.0f, sl2 = 0.0f, sxl = 0.0f;
        for (int i = 0; i < n; i++) {
            int l = imax(0, imin(nmax, round_even(is * (x[i] - lo))));
            cand[i] = (uint8_t)l;
            sl += w[i] * (float)l;
            sl2 += w[i] * (float)l * (float)l;
            sxl += w[i] * (float)l * x[i];
        }
        float det = sw * sl2 - sl * sl;
        if (det <= 0.0f)
            continue;
        float s = (sw * sxl - sx * sl) / det, m = (sl2 * sx - sl * sxl) / det;
        if (m > 0.0f) {
            m = 0.0f;
            s = sxl / sl2;
        }
        float err = 0.0f;
        for (int i = 0; i < n; i++) {
            float e = s * (float)cand[i] + m - x[i];
            err += w[i] * (use_abs ? fabsf(e) : e * e);
        }
        if (err < best) {
            memcpy(L, cand, (size_t)n);
            best = err;
            scale = s;
            lo = m;
        }
    }
    *offset = -lo;
    return scale;
}

/* Symmetric fit of n values to levels -nmax..nmax-1 weighted by x^2: tries
 * inverse scales -(nmax + 0.1 i) / max for i in -9..9 and keeps the
 * least-squares scale with the best weighted fit. L gets level + nmax. */
static float fit_scale_sym(int n, int nmax, const float *x, int8_t *L) {
    float max = signed_absmax(x, n);
    if (fabsf(max) < K_TINY) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    /* The plain grid first, then steps of 0.1 around nmax; a candidate
     * replaces the best when its fit error sum w x^2 - sxl^2 / sl2 is lower. */
    float scale = 0.0f, best = 0.0f;
    for (int i = 0; i <= 19; i++) {
        int step = i == 0 ? 0 : i - 10; /* 0, then -9 .. 9 */
        if (i > 0 && step == 0)
            continue;
        float is = -((float)nmax + 0.1f * (float)step) / max;
        float sxl = 0.0f, sl2 = 0.0f;
        for (int k = 0; k < n; k++) {
            int l = imax(-nmax, imin(nmax - 1, round_even(is * x[k])));
            float w = x[k] * x[k];
            sxl += w * x[k] * (float)l;
            sl2 += w * (float)l * (float)l;
        }
        if (i > 0 && !(sl2 > 0.0f && sxl * sxl > best * sl2))
            continue;
        for (int k = 0; k < n; k++)
            L[k] = (int8_t)(nmax + imax(-nmax, imin(nmax - 1, round_even(is * x[k]))));
        scale = sl2 > 0.0f ? sxl / sl2 : 0.0f;
        best = scale * sxl;
    }
    return scale;
}

/* Symmetric fit for Q3_K: start from the max grid, then up to five greedy
 * passes that move single values to the level that improves the x^2-weighted
 * least-squares fit. L gets level + nmax. */
static float fit_scale_greedy(int n, int nmax, const float *x, int8_t *L) {
    float max = signed_absmax(x, n);
    if (fabsf(max) < K_TINY) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    float is = -(float)nmax / max, sxl = 0.0f, sl2 = 0.0f;
    for (int i = 0; i < n; i++) {
        int l = imax(-nmax, imin(nmax - 1, round_even(is * x[i])));
        L[i] = (int8_t)l;
        float w = x[i] * x[i];
        sxl += w * x[i] * (float)l;
        sl2 += w * (float)l * (float)l;
    }
    for (int pass = 0; pass < 5; pass++) {
        int changed = 0;
        for (int i = 0; i < n; i++) {
            float w = x[i] * x[i];
            float rx = sxl - w * x[i] * (float)L[i];
            if (rx <= 0.0f)
                continue;
            float r2 = sl2 - w * (float)L[i] * (float)L[i];
            int l = imax(-nmax, imin(nmax - 1, round_even(x[i] * r2 / rx)));
            if (l == L[i])
                continue;
            float nx = rx + w * x[i] * (float)l, n2 = r2 + w * (float)l * (float)l;
            if (n2 > 0.0f && nx * nx * sl2 > sxl * sxl * n2) {
                L[i] = (int8_t)l;
                sxl = nx;
                sl2 = n2;
                changed++;
            }
        }
        if (!changed)
            break;
    }
    for (int i = 0; i < n; i++)
        L[i] = (int8_t)(L[i] + nmax);
    return sl2 > 0.0f ? sxl / sl2 : 0.0f;
}

/* Packs 256 2-bit levels as Q2_K/Q3_K store them (see dq_q2_k). */
static void pack_2bit(const uint8_t *L, uint8_t *qs) {
    for (int g = 0; g < 2; g++)
        for (int l = 0; l < 32; l++) {
            const uint8_t *v = L + 128 * g + l;
            qs[32 * g + l] = (uint8_t)(v[0] | (v[32] << 2) | (v[64] << 4) | (v[96] << 6));
        }
}

static void q_q2_k(const float *x, uint8_t *b) {
    uint8_t L[256];
    float scales[16], mins[16], w[16], max_scale = 0.0f, max_min = 0.0f;
    for (int j = 0; j < 16; j++) {
        for (int l = 0; l < 16; l++)
            w[l] = fabsf(x[16 * j + l]);
        scales[j] =
            fit_scale_offset(16, 3, x + 16 * j, w, L + 16 * j, &mins[j], -0.5f, 0.1f, 15, true);
        max_scale = fmaxf(max_scale, scales[j]);
        max_min = fmaxf(max_min, mins[j]);
    }
    memset(b, 0, 84);
    if (max_scale > 0.0f) {
        float is = 15.0f / max_scale;
        for (int j = 0; j < 16; j++)
            b[j] = (uint8_t)round_even(is * scales[j]);
        wr_half(b + 80, max_scale / 15.0f);
    }
    if (max_min > 0.0f) {
        float is = 15.0f / max_min;
        for (int j = 0; j < 16; j++)
            b[j] |= (uint8_t)(round_even(is * mins[j]) << 4);
        wr_half(b + 82, max_min / 15.0f);
    }
    float d = rd_half(b + 80), dmin = rd_half(b + 82);
    for (int j = 0; j < 16; j++) {
        float dl = d * (float)(b[j] & 0xf);
        if (dl == 0.0f)
            continue;
        float ml = dmin * (float)(b[j] >> 4);
        for (int l = 0; l < 16; l++)
            L[16 * j + l] = (uint8_t)imax(0, imin(3, round_even((x[16 * j + l] + ml) / dl)));
    }
    pack_2bit(L, b + 16);
}

static void q_q3_k(const float *x, uint8_t *b) {
    int8_t L[256];
    float scales[16], max_scale = 0.0f, amax = 0.0f;
    for (int j = 0; j < 16; j++) {
        scales[j] = fit_scale_greedy(16, 4, x + 16 * j, L + 16 * j);
        if (fabsf(scales[j]) > amax) {
            amax = fabsf(scales[j]);
            max_scale = scales[j];
        }
    }
    memset(b, 0, 110);
    uint8_t *sc = b + 96;
    if (max_scale != 0.0f) {
        float is = -32.0f / max_scale;
        for (int j = 0; j < 16; j++) {
            int l = imax(-32, imin(31, round_even(is * scales[j]))) + 32;
            if (j < 8)
                sc[j] = (uint8_t)(l & 0xf);
            else
                sc[j - 8] |= (uint8_t)((l & 0xf) << 4);
            sc[8 + j % 4] |= (uint8_t)((l >> 4) << (2 * (j / 4)));
        }
        wr_half(b + 108, 1.0f / is);
    }
    float d = rd_half(b + 108);
    for (int j = 0; j < 16; j++) {
        float dl = d * (float)k3_scale(sc, j);
        if (dl == 0.0f)
            continue;
        for (int l = 0; l < 16; l++)
            L[16 * j + l] = (int8_t)(imax(-4, imin(3, round_even(x[16 * j + l] / dl))) + 4);
    }
    /* Third bit: value i goes to hmask[i % 32], bit i / 32. */
    uint8_t low[256];
    for (int i = 0; i < 256; i++) {
        if (L[i] > 3)
            b[i % 32] |= (uint8_t)(1u << (i / 32));
        low[i] = (uint8_t)(L[i] & 3);
    }
    pack_2bit(low, b + 32);
}

/* Shared by Q4_K and Q5_K: eight sub-blocks of 32 with 6-bit scales and
 * minimums; returns the final levels in L. */
static void q_k4_scales(const float *x, uint8_t *b, int nmax, float rmin, int nstep, uint8_t *L) {
    float scales[8], mins[8], w[32], max_scale = 0.0f, max_min = 0.0f;
    for (int j = 0; j < 8; j++) {
        const float *xs = x + 32 * j;
        float s2 = 0.0f;
        for (int l = 0; l < 32; l++)
            s2 += xs[l] * xs[l];
        float av = sqrtf(s2 / 32.0f);
        for (int l = 0; l < 32; l++)
            w[l] = av + fabsf(xs[l]);
        scales[j] =
            fit_scale_offset(32, nmax, xs, w, L + 32 * j, &mins[j], rmin, 0.1f, nstep, false);
        max_scale = fmaxf(max_scale, scales[j]);
        max_min = fmaxf(max_min, mins[j]);
    }
    float is = max_scale > 0.0f ? 63.0f / max_scale : 0.0f;
    float im = max_min > 0.0f ? 63.0f / max_min : 0.0f;
    memset(b + 4, 0, 12);
    for (int j = 0; j < 8; j++) {
        int ls = imin(63, (uint8_t)round_even(is * scales[j]));
        int lm = imin(63, (uint8_t)round_even(im * mins[j]));
        k4_scale_min_put(b + 4, j, ls, lm);
    }
    wr_half(b, max_scale / 63.0f);
    wr_half(b + 2, max_min / 63.0f);
    float d = rd_half(b), dmin = rd_half(b + 2);
    for (int j = 0; j < 8; j++) {
        int sc, mn;
        k4_scale_min(b + 4, j, &sc, &mn);
        float dl = d * (float)sc;
        if (dl == 0.0f)
            continue;
        float ml = dmin * (float)mn;
        for (int l = 0; l < 32; l++)
            L[32 * j + l] = (uint8_t)imax(0, imin(nmax, round_even((x[32 * j + l] + ml) / dl)));
    }
}

static void q_q4_k(const float *x, uint8_t *b) {
    uint8_t L[256];
    q_k4_scales(x, b, 15, -1.0f, 20, L);
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++)
            b[16 + 32 * c + l] = (uint8_t)(L[64 * c + l] | (L[64 * c + 32 + l] << 4));
}

static void q_q5_k(const float *x, uint8_t *b) {
    uint8_t L[256];
    q_k4_scales(x, b, 31, -0.5f, 15, L);
    uint8_t *qh = b + 16, *q = b + 48;
    memset(qh, 0, 32);
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++) {
            int v1 = L[64 * c + l], v2 = L[64 * c + 32 + l];
            qh[l] |= (uint8_t)(((v1 >> 4) << (2 * c)) | ((v2 >> 4) << (2 * c + 1)));
            q[32 * c + l] = (uint8_t)((v1 & 0xf) | ((v2 & 0xf) << 4));
        }
}

static void q_q6_k(const float *x, uint8_t *b) {
    int8_t L[256];
    float scales[16], max_scale = 0.0f, amax = 0.0f;
    for (int j = 0; j < 16; j++) {
        scales[j] = fit_scale_sym(16, 32, x + 16 * j, L + 16 * j);
        if (fabsf(scales[j]) > amax) {
            amax = fabsf(scales[j]);
            max_scale = scales[j];
        }
    }
    memset(b, 0, 210);
    if (amax < K_TINY)
        return;
    float is = -128.0f / max_scale;
    wr_half(b + 208, 1.0f / is);
    int8_t *sc = (int8_t *)(b + 192);
    for (int j = 0; j < 16; j++)
        sc[j] = (int8_t)imin(127, round_even(is * scales[j]));
    float d = rd_half(b + 208);
    for (int j = 0; j < 16; j++) {
        float dl = d * (float)sc[j];
        if (dl == 0.0f)
            continue;
        for (int l = 0; l < 16; l++)
            L[16 * j + l] = (int8_t)(imax(-32, imin(31, round_even(x[16 * j + l] / dl))) + 32);
    }
    for (int g = 0; g < 2; g++) {
        uint8_t *ql = b + 64 * g, *qh = b + 128 + 32 * g;
        const int8_t *v = L + 128 * g;
        for (int l = 0; l < 32; l++) {
            ql[l] = (uint8_t)((v[l] & 0xf) | ((v[l + 64] & 0xf) << 4));
            ql[l + 32] = (uint8_t)((v[l + 32] & 0xf) | ((v[l + 96] & 0xf) << 4));
            qh[l] = (uint8_t)((v[l] >> 4) | ((v[l + 32] >> 4) << 2) | ((v[l + 64] >> 4) << 4) |
                              ((v[l + 96] >> 4) << 6));
        }
    }
}

static void q_q8_k(const float *x, uint8_t *b) {
    float max = signed_absmax(x, 256);
    memset(b, 0, 292);
    if (max == 0.0f)
        return;
    float is = -127.0f / max;
    for (int j = 0; j < 256; j++)
        b[4 + j] = (uint8_t)(int8_t)imin(127, round_even(is * x[j]));
    for (int j = 0; j < 16; j++) {
        int sum = 0;
        for (int l = 0; l < 16; l++)
            sum += (int8_t)b[4 + 16 * j + l];
        b[260 + 2 * j] = (uint8_t)(sum & 0xff);
        b[261 + 2 * j] = (uint8_t)((sum >> 8) & 0xff);
    }
    wr_f32(b, 1.0f / is);
}

/* ---- the type table ------------------------------------------------------------ */

typedef struct quant_type {
    ia_dtype dtype;
    uint32_t ggml;
    void (*dequant)(const uint8_t *block, float *y);
    void (*quant)(const float *x, uint8_t *block);
    /* Byte offsets of f16 scale fields (-1: none); Q8_K's scale is f32. */
    int half_at[2];
    const char *half_name[2];
} quant_type;

static const quant_type quant_types[] = {
    {IA_DTYPE_Q4_0, IA_GGML_Q4_0, dq_q4_0, q_q4_0, {0, -1}, {"d", NULL}},
    {IA_DTYPE_Q4_1, IA_GGML_Q4_1, dq_q4_1, q_q4_1, {0, 2}, {"d", "m"}},
    {IA_DTYPE_Q5_0, IA_GGML_Q5_0, dq_q5_0, q_q5_0, {0, -1}, {"d", NULL}},
    {IA_DTYPE_Q5_1, IA_GGML_Q5_1, dq_q5_1, q_q5_1, {0, 2}, {"d", "m"}},
    {IA_DTYPE_Q8_0, IA_GGML_Q8_0, dq_q8_0, q_q8_0, {0, -1}, {"d", NULL}},
    {IA_DTYPE_Q2_K, IA_GGML_Q2_K, dq_q2_k, q_q2_k, {80, 82}, {"d", "dmin"}},
    {IA_DTYPE_Q3_K, IA_GGML_Q3_K, dq_q3_k, q_q3_k, {108, -1}, {"d", NULL}},
    {IA_DTYPE_Q4_K, IA_GGML_Q4_K, dq_q4_k, q_q4_k, {0, 2}, {"d", "dmin"}},
    {IA_DTYPE_Q5_K, IA_GGML_Q5_K, dq_q5_k, q_q5_k, {0, 2}, {"d", "dmin"}},
    {IA_DTYPE_Q6_K, IA_GGML_Q6_K, dq_q6_k, q_q6_k, {208, -1}, {"d", NULL}},
    {IA_DTYPE_Q8_K, IA_GGML_Q8_K, dq_q8_k, q_q8_k, {-1, -1}, {NULL, NULL}},
};

static const quant_type *quant_type_get(ia_dtype dtype) {
    for (size_t i = 0; i < sizeof quant_types / sizeof quant_types[0]; i++)
        if (quant_types[i].dtype == dtype)
            return &quant_types[i];
    return NULL;
}

bool ia_dtype_is_quantized(ia_dtype dtype) { return quant_type_get(dtype) != NULL; }

ia_status ia_dtype_from_ggml(uint32_t ggml_type, ia_dtype *out) {
    switch (ggml_type) {
    case IA_GGML_F32:
        *out = IA_DTYPE_F32;
        return IA_OK;
    case IA_GGML_F16:
        *out = IA_DTYPE_F16;
        return IA_OK;
    case IA_GGML_BF16:
        *out = IA_DTYPE_BF16;
        return IA_OK;
    default:
        break;
    }
    for (size_t i = 0; i < sizeof quant_types / sizeof quant_types[0]; i++)
        if (quant_types[i].ggml == ggml_type) {
            *out = quant_types[i].dtype;
            return IA_OK;
        }
    const ia_ggml_type_info *ti = ia_ggml_type_get_info(ggml_type);
    if (ti)
        return ia_error_set(IA_EUNSUPPORTED, "ggml type %s (%u) is not supported", ti->name,
                            ggml_type);
    return ia_error_set(IA_EUNSUPPORTED, "unknown ggml type id %u", ggml_type);
}

int ia_dtype_to_ggml(ia_dtype dtype) {
    switch (dtype) {
    case IA_DTYPE_F32:
        return IA_GGML_F32;
    case IA_DTYPE_F16:
        return IA_GGML_F16;
    case IA_DTYPE_BF16:
        return IA_GGML_BF16;
    default:
        break;
    }
    const quant_type *qt = quant_type_get(dtype);
    return qt ? (int)qt->ggml : -1;
}

ia_status ia_dtype_parse(const char *name, ia_dtype *out) {
    if (name) {
        for (int t = 0; t < IA_DTYPE_COUNT; t++) {
            const char *n = ia_dtype_name((ia_dtype)t);
            size_t i = 0;
            while (n[i] && name[i] && tolower((unsigned char)name[i]) == n[i])
                i++;
            if (!n[i] && !name[i]) {
                *out = (ia_dtype)t;
                return IA_OK;
            }
        }
    }
    return ia_error_set(IA_EINVAL,
                        "unknown type '%s' (expected one of f32, f16, bf16, q8_0, q4_0, "
                        "q4_1, q5_0, q5_1, q2_k, q3_k, q4_k, q5_k, q6_k)",
                        name ? name : "(null)");
}

/* The type's geometry and the block count of n elements. */
static ia_status blocks_of(ia_dtype type, size_t n, const quant_type **qt,
                           const ia_dtype_info **info, size_t *nb) {
    *qt = quant_type_get(type);
    *info = ia_dtype_get_info(type);
    if (!*qt || !*info)
        return ia_error_set(IA_EUNSUPPORTED, "%s is not a block-quantised type",
                            ia_dtype_name(type));
    if (n % (*info)->block_elems)
        return ia_error_set(IA_ERANGE, "%zu elements are not a whole number of %s blocks of %u", n,
                            (*info)->name, (*info)->block_elems);
    *nb = n / (*info)->block_elems;
    return IA_OK;
}

ia_status ia_quantize_row(ia_dtype type, const float *src, void *dst, size_t n) {
    const quant_type *qt;
    const ia_dtype_info *info;
    size_t nb;
    ia_status st = blocks_of(type, n, &qt, &info, &nb);
    if (st != IA_OK)
        return st;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(src[i]))
            return ia_error_set(IA_EINVAL, "cannot quantise to %s: element %zu is %g", info->name,
                                i, (double)src[i]);
    uint8_t *out = dst;
    for (size_t b = 0; b < nb; b++)
        qt->quant(src + b * info->block_elems, out + b * info->block_bytes);
    return IA_OK;
}

typedef struct quantize_job {
    ia_dtype type;
    const float *src;
    uint8_t *dst;
    size_t rows, n, row_bytes, per;
    ia_status *status; /* per task */
    char (*msg)[256];  /* per task: the failing row's message */
} quantize_job;

static void quantize_task(void *ctx, size_t task, int thread) {
    const quantize_job *job = ctx;
    size_t r0 = task * job->per, r1 = r0 + job->per < job->rows ? r0 + job->per : job->rows;
    job->status[task] = IA_OK;
    for (size_t r = r0; r < r1; r++) {
        ia_status st = ia_quantize_row(job->type, job->src + r * job->n,
                                       job->dst + r * job->row_bytes, job->n);
        if (st != IA_OK) {
            job->status[task] = st;
            snprintf(job->msg[task], sizeof job->msg[task], "row %zu: %s", r, ia_error_message());
            return;
        }
    }
    (void)thread;
}

ia_status ia_quantize_rows(ia_dtype type, const float *src, void *dst, size_t rows,
                           size_t n_per_row, ia_threadpool *pool) {
    const quant_type *qt;
    const ia_dtype_info *info;
    size_t nb;
    ia_status st = blocks_of(type, n_per_row, &qt, &info, &nb);
    if (st != IA_OK || rows == 0)
        return st;
    size_t threads = pool ? (size_t)ia_threadpool_size(pool) : 1;
    size_t tasks = rows < 4 * threads ? rows : 4 * threads;
    quantize_job job = {.type = type,
                        .src = src,
                        .dst = dst,
                        .rows = rows,
                        .n = n_per_row,
                        .row_bytes = nb * info->block_bytes,
                        .per = (rows + tasks - 1) / tasks};
    tasks = (rows + job.per - 1) / job.per;
    job.status = ia_malloc_array(tasks, sizeof *job.status);
    job.msg = ia_malloc_array(tasks, sizeof *job.msg);
    if (!job.status || !job.msg) {
        st = IA_ENOMEM;
        goto done;
    }
    ia_threadpool_run(pool, tasks, quantize_task, &job);
    for (size_t t = 0; t < tasks; t++)
        if (job.status[t] != IA_OK) {
            st = ia_error_set(job.status[t], "%s", job.msg[t]);
            break;
        }
done:
    free(job.status);
    free(job.msg);
    return st;
}

ia_status ia_dequantize_row(ia_dtype type, const void *src, float *dst, size_t n) {
    if (type == IA_DTYPE_F32 || type == IA_DTYPE_F16 || type == IA_DTYPE_BF16)
        return ia_convert_to_f32(type, src, dst, n);
    const quant_type *qt;
    const ia_dtype_info *info;
    size_t nb;
    ia_status st = blocks_of(type, n, &qt, &info, &nb);
    if (st != IA_OK)
        return st;
    const uint8_t *in = src;
    for (size_t b = 0; b < nb; b++)
        qt->dequant(in + b * info->block_bytes, dst + b * info->block_elems);
    return IA_OK;
}

ia_status ia_quant_validate(ia_dtype type, const void *blocks, size_t n, size_t *bad_block) {
    if (type == IA_DTYPE_F32 || type == IA_DTYPE_F16 || type == IA_DTYPE_BF16)
        return IA_OK; /* no block scales to check */
    const quant_type *qt;
    const ia_dtype_info *info;
    size_t nb;
    ia_status st = blocks_of(type, n, &qt, &info, &nb);
    if (st != IA_OK)
        return st;
    const uint8_t *in = blocks;
    for (size_t b = 0; b < nb; b++) {
        const uint8_t *blk = in + b * info->block_bytes;
        for (int f = 0; f < 2; f++) {
            if (qt->half_at[f] < 0)
                continue;
            /* An f16 is non-finite when its five exponent bits are all set. */
            if ((rd_u16(blk + qt->half_at[f]) & 0x7c00) == 0x7c00) {
                if (bad_block)
                    *bad_block = b;
                return ia_error_set(IA_EPARSE, "%s block %zu: scale field '%s' is %s", info->name,
                                    b, qt->half_name[f],
                                    rd_u16(blk + qt->half_at[f]) & 0x3ff ? "NaN" : "infinite");
            }
        }
        if (type == IA_DTYPE_Q8_K && !isfinite(rd_f32(blk))) {
            if (bad_block)
                *bad_block = b;
            return ia_error_set(IA_EPARSE, "%s block %zu: scale field 'd' is not finite",
                                info->name, b);
        }
    }
    return IA_OK;
}

ia_dtype ia_quant_fit(ia_dtype type, int64_t row_len) {
    if (!ia_dtype_is_quantized(type) || row_len % ia_dtype_get_info(type)->block_elems == 0)
        return type;
    switch (type) {
    case IA_DTYPE_Q2_K:
    case IA_DTYPE_Q3_K:
        type = IA_DTYPE_Q4_0;
        break;
    case IA_DTYPE_Q4_K:
        type = IA_DTYPE_Q5_0;
        break;
    case IA_DTYPE_Q5_K:
        type = IA_DTYPE_Q5_1;
        break;
    case IA_DTYPE_Q6_K:
        type = IA_DTYPE_Q8_0;
        break;
    default:
        return IA_DTYPE_F16;
    }
    return row_len % ia_dtype_get_info(type)->block_elems == 0 ? type : IA_DTYPE_F16;
}
