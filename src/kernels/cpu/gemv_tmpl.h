/*
 * gemv_tmpl.h: the GEMV (m = 1..4) of the vector variants, written once for
 * gemm_avx2.c and gemm_avx512.c, each compiled with its own ISA flags.
 *
 * Every output here is the very chain the variant's micro-kernels compute:
 * it starts from its bias (or zero), takes one FMA per k in k order and goes
 * through activate_tile at the end. (The micro-kernels carry the chain from
 * one k-block to the next through y, and a stored float reloads with the
 * same bits.) So row i of y has the same bits whether x has one row, four
 * or hundreds; the server batches requests on that promise, and
 * test_linear.c checks it with memcmp.
 *
 * One chain per output leaves the FMA latency to hide with other outputs
 * (8 chains in flight), so a call walks np panels side by side, each its
 * own contiguous stream: np = 4 for one row and 2 for two, 1 for three or
 * four rows.
 *
 * The includer defines: NR (a panel's outputs: two vectors of GV_LANES),
 * GV (the float vector type), GV_LANES, GV_ZERO(), GV_LOADU(p),
 * GV_STOREU(p, v), GV_SET1(f), GV_FMA(a, b, c) (a * b + c, fused),
 * GEMV_PREFETCH (bytes ahead within a panel), ALWAYS_INLINE and
 * activate_tile(tile, ld, rows, act). It then writes one body per weight
 * type with GEMV_BODY, defining GLOAD_EVEN / GLOAD_ODD / GLOAD_TAIL, which
 * read the weights at pb into b0, b1 (step k) and h0, h1 (step k + 1), and
 * names them in GEMV_FUNCTIONS.
 */
#ifndef IA_KERNELS_CPU_GEMV_TMPL_H
#define IA_KERNELS_CPU_GEMV_TMPL_H

#include <string.h>

/* X(i, q) for rows i = 0..3 of panel q; X(q) for panels q = 0..3. Rows at
 * or past the constant m and panels at or past np fold away. */
#define GROWS(X, q) X(0, q) X(1, q) X(2, q) X(3, q)
#define GPANELS(X) X(0) X(1) X(2) X(3)
#define GX(i) const float *gx##i = a->x + (i < m ? i : 0) * a->ldx;
#define GPANEL(q)                                                                              \
    const char *pb##q = (const char *)w->data + (p + (q < np ? q : 0)) * w->panel_elems * esz; \
    float pad##q[NR];                                                                          \
    const float *bias##q = q < np ? gemv_bias(a, (p + q) * NR, pad##q) : NULL;                 \
    GROWS(GACC, q)
#define GACC(i, q)                                     \
    GV g##i##q##0 = GV_ZERO(), g##i##q##1 = GV_ZERO(); \
    if (i < m && q < np && bias##q) {                  \
        g##i##q##0 = GV_LOADU(bias##q);                \
        g##i##q##1 = GV_LOADU(bias##q + GV_LANES);     \
    }
#define GFMA(i, q, kk, b0, b1)                   \
    if (i < m) {                                 \
        GV av = GV_SET1(gx##i[kk]);              \
        g##i##q##0 = GV_FMA(av, b0, g##i##q##0); \
        g##i##q##1 = GV_FMA(av, b1, g##i##q##1); \
    }
#define GFMA_E(i, q) GFMA(i, q, k, b0, b1)
#define GFMA_O(i, q) GFMA(i, q, k + 1, h0, h1)
/* Two k steps of panel q. */
#define GSTEP(q)                                       \
    if (q < np) {                                      \
        const char *pb = pb##q;                        \
        _mm_prefetch(pb + GEMV_PREFETCH, _MM_HINT_T0); \
        GLOAD_EVEN                                     \
        GROWS(GFMA_E, q)                               \
        GLOAD_ODD                                      \
        GROWS(GFMA_O, q)                               \
        pb##q += 2 * step;                             \
    }
#define GTAIL(q)                \
    if (q < np) {               \
        const char *pb = pb##q; \
        GLOAD_TAIL              \
        GROWS(GFMA_E, q)        \
    }
#define GTILE(i, q)                                   \
    if (i < m) {                                      \
        GV_STOREU(t + i * NR, g##i##q##0);            \
        GV_STOREU(t + i * NR + GV_LANES, g##i##q##1); \
    }
/* Through a tile, so that the activation is activate_tile's, bit for bit
 * (a whole panel's rows copied with a constant size). */
#define GSTORE(q)                                                                          \
    if (q < np) {                                                                          \
        float t[CPU_GEMV_MAX_M * NR];                                                      \
        GROWS(GTILE, q)                                                                    \
        if (act != IA_ACT_NONE)                                                            \
            activate_tile(t, NR, (int)m, act);                                             \
        const size_t col = (p + q) * NR;                                                   \
        if (w->n - col >= NR)                                                              \
            for (size_t i = 0; i < m; i++)                                                 \
                memcpy(a->y + i * a->ldy + col, t + i * NR, NR * sizeof(float));           \
        else                                                                               \
            for (size_t i = 0; i < m; i++)                                                 \
                memcpy(a->y + i * a->ldy + col, t + i * NR, (w->n - col) * sizeof(float)); \
    }

/* The bias of the panel at col; the last, partial panel's through a
 * zero-padded copy (as the driver's edge tile does). */
static ALWAYS_INLINE const float *gemv_bias(const cpu_gemv_args *a, size_t col, float *pad) {
    const size_t ncols = a->w->n - col;
    if (!a->bias || ncols >= NR)
        return a->bias ? a->bias + col : NULL;
    for (size_t j = 0; j < NR; j++)
        pad[j] = j < ncols ? a->bias[col + j] : 0.0f;
    return pad;
}

/* Panels [p, p + np) for rows [0, m) of x, whole k; TYPE is the panel's
 * element, STEP its bytes per k step. */
#define GEMV_BODY(TYPE, STEP)                             \
    const ia_packed_weight *w = a->w;                     \
    const size_t k_len = w->k;                            \
    const ia_activation act = a->act;                     \
    const size_t esz = sizeof(TYPE), step = (STEP);       \
    GX(0) GX(1) GX(2) GX(3) GPANELS(GPANEL) size_t k = 0; \
    for (; k + 2 <= k_len; k += 2) {                      \
        GPANELS(GSTEP)                                    \
    }                                                     \
    if (k < k_len) {                                      \
        GPANELS(GTAIL)                                    \
    }                                                     \
    GPANELS(GSTORE)

/* Panels [p0, p1) in groups of np (see above), the rest in smaller ones. */
#define GEMV_DISPATCH(name, body)              \
    static void name(const cpu_gemv_args *a) { \
        size_t p = a->p0;                      \
        const size_t p1 = a->p1;               \
        switch (a->m) {                        \
        case 1:                                \
            for (; p + 4 <= p1; p += 4)        \
                body(a, p, 1, 4);              \
            for (; p + 2 <= p1; p += 2)        \
                body(a, p, 1, 2);              \
            for (; p < p1; p++)                \
                body(a, p, 1, 1);              \
            break;                             \
        case 2:                                \
            for (; p + 2 <= p1; p += 2)        \
                body(a, p, 2, 2);              \
            for (; p < p1; p++)                \
                body(a, p, 2, 1);              \
            break;                             \
        case 3:                                \
            for (; p < p1; p++)                \
                body(a, p, 3, 1);              \
            break;                             \
        default:                               \
            for (; p < p1; p++)                \
                body(a, p, 4, 1);              \
            break;                             \
        }                                      \
    }

/* gemv (the variant's cpu_gemv_fn) over the three bodies. */
#define GEMV_FUNCTIONS(f32_body, f16_body, bf16_body) \
    GEMV_DISPATCH(gemv_f32, f32_body)                 \
    GEMV_DISPATCH(gemv_f16, f16_body)                 \
    GEMV_DISPATCH(gemv_bf16, bf16_body)               \
    static void gemv(const cpu_gemv_args *a) {        \
        switch (a->w->compute) {                      \
        case IA_DTYPE_F16:                            \
            gemv_f16(a);                              \
            break;                                    \
        case IA_DTYPE_BF16:                           \
            gemv_bf16(a);                             \
            break;                                    \
        default:                                      \
            gemv_f32(a);                              \
            break;                                    \
        }                                             \
    }

#endif /* IA_KERNELS_CPU_GEMV_TMPL_H */
