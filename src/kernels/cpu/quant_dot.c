/*
 * quant_dot: linear on block-quantised weights - packing, the activation
 * quantisers, the threaded driver, and the portable dot products that are
 * both the generic variant and the fallback of the vector ones.
 *
 * Weights stay in ggml's blocks (see cpu_internal.h), activations are
 * quantised once per call to 8 bits per value: cpu_qa32 blocks (f32 scale
 * and the sum of the quants) for the 32-element types, Q8_K for the
 * k-quants. A dot product is then integer arithmetic within a block (or
 * sub-block) and one float scale per block:
 *   Q8_0: dw da sum(w a)            Q4_0 / Q5_0: dw da (sum(q a) - 8|16 sum a)
 *   Q4_1 / Q5_1: dw da sum(q a) + m da sum a
 *   k-quants: da (d sum_j sc_j sum(q a)_j - dmin sum_j mn_j sum(a)_j)
 * where the per-16 sums of Q8_K supply sum(a)_j without touching a again.
 * The quantisers here are the scalar reference; a vector variant's table
 * may bring its own, byte-identical ones (the driver quantises every row of
 * x on each call, so at decode their speed is part of every token's time).
 *
 * Q8_0 weights are the exception: packing interleaves them and linear hands
 * them to quant_gemm.c's tiles for every m; the Q8_0 dot product here works
 * on plain ggml rows and is kept as the reference of the row format.
 *
 * Decode (m <= 4) streams each weight row once for all m activation rows and
 * gives every thread a few contiguous runs of rows; larger m cuts the work
 * into tiles of weight rows x activation rows so that a tile's weights stay
 * in L2 while its activation rows pass by.
 */
#include "kernels/cpu/cpu_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ia/quant.h"

#define QK_K 256
#define Q8K_BYTES 292
#define ROW_TILE 16 /* weight rows per task for large m */
#define ACT_TILE 64 /* activation rows per task for large m */

/* ---- activation quantisers ------------------------------------------------------------ */

static inline int round_even(float v) {
    float t = v + 12582912.0f;
    int32_t i;
    memcpy(&i, &t, sizeof i);
    return (i & 0x007fffff) - 0x00400000;
}

void cpu_quantize_qa32(const float *x, cpu_qa32 *dst, size_t k) {
    for (size_t b = 0; b < k / 32; b++, x += 32) {
        float amax = 0.0f;
        for (int j = 0; j < 32; j++)
            amax = fmaxf(amax, fabsf(x[j]));
        float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        int sum = 0;
        for (int j = 0; j < 32; j++) {
            float v = x[j] * id;
            int q = v != v ? 0 : (int)lrintf(fmaxf(-127.0f, fminf(127.0f, v)));
            dst[b].qs[j] = (int8_t)q;
            sum += q;
        }
        dst[b].d = d;
        dst[b].sum = sum;
    }
}

void cpu_quantize_q8k(const float *x, void *dst, size_t k) {
    uint8_t *out = dst;
    for (size_t b = 0; b < k / QK_K; b++, x += QK_K, out += Q8K_BYTES) {
        float amax = 0.0f;
        for (int j = 0; j < QK_K; j++)
            amax = fmaxf(amax, fabsf(x[j]));
        float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        int8_t *qs = (int8_t *)(out + 4);
        for (int j = 0; j < QK_K; j++) {
            float v = fmaxf(-127.0f, fminf(127.0f, x[j] * id));
            qs[j] = (int8_t)(v != v ? 0 : round_even(v));
        }
        int16_t sums[16];
        for (int j = 0; j < 16; j++) {
            int s = 0;
            for (int l = 0; l < 16; l++)
                s += qs[16 * j + l];
            sums[j] = (int16_t)s;
        }
        memcpy(out, &d, sizeof d);
        memcpy(out + 260, sums, sizeof sums);
    }
}

/* ---- generic dot products ---------------------------------------------------------------- */

static inline float half_at(const uint8_t *p) {
    return ia_f16_to_f32((uint16_t)(p[0] | (p[1] << 8)));
}

/* The 32 levels of a 32-element block (offset removed for the symmetric
 * types), its scale and its minimum (0 for the symmetric types). */
static void levels32(ia_dtype t, const uint8_t *b, int8_t *q, float *d, float *m) {
    *m = 0.0f;
    *d = half_at(b);
    switch (t) {
    case IA_DTYPE_Q8_0:
        memcpy(q, b + 2, 32);
        break;
    case IA_DTYPE_Q4_0:
        for (int j = 0; j < 16; j++) {
            q[j] = (int8_t)((b[2 + j] & 0xf) - 8);
            q[j + 16] = (int8_t)((b[2 + j] >> 4) - 8);
        }
        break;
    case IA_DTYPE_Q4_1:
        *m = half_at(b + 2);
        for (int j = 0; j < 16; j++) {
            q[j] = (int8_t)(b[4 + j] & 0xf);
            q[j + 16] = (int8_t)(b[4 + j] >> 4);
        }
        break;
    case IA_DTYPE_Q5_0:
    case IA_DTYPE_Q5_1: {
        bool one = t == IA_DTYPE_Q5_1;
        if (one)
            *m = half_at(b + 2);
        const uint8_t *qh = b + (one ? 4 : 2), *qs = b + (one ? 8 : 6);
        uint32_t h = (uint32_t)qh[0] | ((uint32_t)qh[1] << 8) | ((uint32_t)qh[2] << 16) |
                     ((uint32_t)qh[3] << 24);
        int off = one ? 0 : 16;
        for (int j = 0; j < 16; j++) {
            q[j] = (int8_t)(((qs[j] & 0xf) | (((h >> j) & 1) << 4)) - off);
            q[j + 16] = (int8_t)(((qs[j] >> 4) | (((h >> (j + 16)) & 1) << 4)) - off);
        }
        break;
    }
    default:
        memset(q, 0, 32);
        break;
    }
}

static void dot32_generic(ia_dtype t, size_t nb, const void *w, const void *a, size_t a_stride,
                          int m, float *out) {
    size_t wb = ia_dtype_get_info(t)->block_bytes;
    for (int r = 0; r < m; r++)
        out[r] = 0.0f;
    for (size_t i = 0; i < nb; i++) {
        int8_t q[32];
        float d, mn;
        levels32(t, (const uint8_t *)w + i * wb, q, &d, &mn);
        for (int r = 0; r < m; r++) {
            const cpu_qa32 *ab = (const cpu_qa32 *)((const uint8_t *)a + (size_t)r * a_stride) + i;
            int s = 0;
            for (int j = 0; j < 32; j++)
                s += q[j] * ab->qs[j];
            out[r] += d * ab->d * (float)s + mn * ab->d * (float)ab->sum;
        }
    }
}

/* Levels of a k-quant super-block (offset removed for the symmetric types)
 * with integer sub-block scales and minimums; *sub is 16 or 32 elements. */
static void levels_k(ia_dtype t, const uint8_t *b, int8_t *q, int *sc, int *mn, float *d,
                     float *dmin, int *sub) {
    *dmin = 0.0f;
    switch (t) {
    case IA_DTYPE_Q2_K:
    case IA_DTYPE_Q3_K: {
        bool three = t == IA_DTYPE_Q3_K;
        const uint8_t *qs = b + (three ? 32 : 16);
        *sub = 16;
        for (int g = 0; g < 2; g++)
            for (int s = 0; s < 4; s++)
                for (int l = 0; l < 32; l++) {
                    int v = (qs[32 * g + l] >> (2 * s)) & 3;
                    if (three)
                        v -= (b[l] >> (4 * g + s)) & 1 ? 0 : 4;
                    q[128 * g + 32 * s + l] = (int8_t)v;
                }
        if (three) {
            const uint8_t *s = b + 96;
            *d = half_at(b + 108);
            for (int j = 0; j < 16; j++) {
                int lo = j < 8 ? s[j] & 0xf : s[j - 8] >> 4;
                sc[j] = (lo | (((s[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32;
                mn[j] = 0;
            }
        } else {
            *d = half_at(b + 80);
            *dmin = half_at(b + 82);
            for (int j = 0; j < 16; j++) {
                sc[j] = b[j] & 0xf;
                mn[j] = b[j] >> 4;
            }
        }
        break;
    }
    case IA_DTYPE_Q4_K:
    case IA_DTYPE_Q5_K: {
        bool five = t == IA_DTYPE_Q5_K;
        const uint8_t *s = b + 4, *qh = b + 16, *qs = b + (five ? 48 : 16);
        *d = half_at(b);
        *dmin = half_at(b + 2);
        *sub = 32;
        for (int j = 0; j < 8; j++) {
            if (j < 4) {
                sc[j] = s[j] & 63;
                mn[j] = s[j + 4] & 63;
            } else {
                sc[j] = (s[j + 4] & 0xf) | ((s[j - 4] >> 6) << 4);
                mn[j] = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
            }
        }
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++) {
                int lo = qs[32 * c + l] & 0xf, hi = qs[32 * c + l] >> 4;
                if (five) {
                    lo |= ((qh[l] >> (2 * c)) & 1) << 4;
                    hi |= ((qh[l] >> (2 * c + 1)) & 1) << 4;
                }
                q[64 * c + l] = (int8_t)lo;
                q[64 * c + 32 + l] = (int8_t)hi;
            }
        break;
    }
    case IA_DTYPE_Q6_K: {
        *d = half_at(b + 208);
        *sub = 16;
        for (int j = 0; j < 16; j++) {
            sc[j] = (int8_t)b[192 + j];
            mn[j] = 0;
        }
        for (int g = 0; g < 2; g++) {
            const uint8_t *ql = b + 64 * g, *qh = b + 128 + 32 * g;
            for (int l = 0; l < 32; l++) {
                q[128 * g + l] = (int8_t)(((ql[l] & 0xf) | ((qh[l] & 3) << 4)) - 32);
                q[128 * g + 32 + l] =
                    (int8_t)(((ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4)) - 32);
                q[128 * g + 64 + l] = (int8_t)(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
                q[128 * g + 96 + l] =
                    (int8_t)(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
            }
        }
        break;
    }
    default:
        memset(q, 0, QK_K);
        *d = 0.0f;
        *sub = 16;
        for (int j = 0; j < 16; j++)
            sc[j] = mn[j] = 0;
        break;
    }
}

static void dotk_generic(ia_dtype t, size_t nb, const void *w, const void *a, size_t a_stride,
                         int m, float *out) {
    size_t wb = ia_dtype_get_info(t)->block_bytes;
    for (int r = 0; r < m; r++)
        out[r] = 0.0f;
    for (size_t i = 0; i < nb; i++) {
        int8_t q[QK_K];
        int sc[16], mn[16], sub;
        float d, dmin;
        levels_k(t, (const uint8_t *)w + i * wb, q, sc, mn, &d, &dmin, &sub);
        for (int r = 0; r < m; r++) {
            const uint8_t *ab = (const uint8_t *)a + (size_t)r * a_stride + i * Q8K_BYTES;
            float da;
            int16_t bsums[16];
            memcpy(&da, ab, sizeof da);
            memcpy(bsums, ab + 260, sizeof bsums);
            const int8_t *aq = (const int8_t *)(ab + 4);
            int32_t isum = 0, msum = 0;
            for (int j = 0; j < QK_K / sub; j++) {
                int32_t s = 0;
                for (int l = 0; l < sub; l++)
                    s += q[j * sub + l] * aq[j * sub + l];
                isum += sc[j] * s;
                int32_t asum = 0;
                for (int h = 0; h < sub / 16; h++)
                    asum += bsums[j * sub / 16 + h];
                msum += mn[j] * asum;
            }
            out[r] += da * (d * (float)isum - dmin * (float)msum);
        }
    }
}

#define GENERIC_DOT(name, type, fn)                                                         \
    static void name(size_t nb, const void *w, const void *a, size_t as, int m, float *o) { \
        fn(type, nb, w, a, as, m, o);                                                       \
    }
GENERIC_DOT(dot_q4_0, IA_DTYPE_Q4_0, dot32_generic)
GENERIC_DOT(dot_q4_1, IA_DTYPE_Q4_1, dot32_generic)
GENERIC_DOT(dot_q5_0, IA_DTYPE_Q5_0, dot32_generic)
GENERIC_DOT(dot_q5_1, IA_DTYPE_Q5_1, dot32_generic)
GENERIC_DOT(dot_q8_0, IA_DTYPE_Q8_0, dot32_generic)
GENERIC_DOT(dot_q2_k, IA_DTYPE_Q2_K, dotk_generic)
GENERIC_DOT(dot_q3_k, IA_DTYPE_Q3_K, dotk_generic)
GENERIC_DOT(dot_q4_k, IA_DTYPE_Q4_K, dotk_generic)
GENERIC_DOT(dot_q5_k, IA_DTYPE_Q5_K, dotk_generic)
GENERIC_DOT(dot_q6_k, IA_DTYPE_Q6_K, dotk_generic)

const cpu_quant_kernels cpu_quant_generic = {.q8_0_tile = cpu_q8_0_tile_generic,
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

/* ---- packing ---------------------------------------------------------------------------- */

ia_status cpu_quant_weight_pack(const ia_tensor *const *parts, int n_parts, ia_dtype compute,
                                int nr, ia_packed_weight **out) {
    ia_packed_weight *w = NULL;
    float *row = NULL;
    ia_status st = IA_OK;
    *out = NULL;
    const ia_dtype_info *qi = ia_dtype_get_info(compute);
    if (!ia_dtype_is_quantized(compute) || compute == IA_DTYPE_Q8_K) {
        st = ia_error_set(IA_EUNSUPPORTED, "linear weights: %s is not a weight type",
                          ia_dtype_name(compute));
        goto fail;
    }
    size_t n = 0, k = 0;
    if ((st = cpu_weight_parts_shape(parts, n_parts, compute, &n, &k)))
        goto fail;
    if (k % qi->block_elems) {
        st = ia_error_set(IA_ERANGE,
                          "linear weight '%s': rows of %zu inputs are not a whole number of %s "
                          "blocks of %u",
                          parts[0]->name ? parts[0]->name : "(unnamed)", k, qi->name,
                          qi->block_elems);
        goto fail;
    }

    w = ia_calloc(1, sizeof *w);
    if (!w) {
        st = IA_ENOMEM;
        goto fail;
    }
    w->compute = compute;
    w->n = n;
    w->k = k;
    w->nr = nr;
    w->n_panels = (n + (size_t)nr - 1) / (size_t)nr;
    w->row_bytes = k / qi->block_elems * qi->block_bytes;
    size_t bytes;
    if (!ia_size_mul(w->row_bytes, n, &bytes)) {
        st = ia_error_set(IA_ENOMEM, "linear weights of %zu x %zu overflow memory sizes", n, k);
        goto fail;
    }
    w->data = ia_malloc_aligned(bytes ? bytes : 64, 64);
    row = ia_malloc_array(k, sizeof *row);
    if (!w->data || !row) {
        st = IA_ENOMEM;
        goto fail;
    }
    uint8_t *dst = w->data;
    for (int p = 0; p < n_parts; p++) {
        const ia_tensor *t = parts[p];
        const char *name = t->name ? t->name : "(unnamed)";
        size_t rows = (size_t)t->shape[0];
        if (t->dtype == compute) {
            size_t bad = 0;
            st = ia_quant_validate(compute, t->data, rows * k, &bad);
            if (st != IA_OK) {
                st = ia_error_set(st, "linear weight '%s' (row %zu): %s", name,
                                  bad * qi->block_elems / k, ia_error_message());
                goto fail;
            }
            memcpy(dst, t->data, rows * w->row_bytes);
            dst += rows * w->row_bytes;
            continue;
        }
        size_t src_elem = t->dtype == IA_DTYPE_F32 ? 4 : 2;
        for (size_t i = 0; i < rows; i++, dst += w->row_bytes) {
            st = ia_convert_to_f32(t->dtype, (const char *)t->data + i * k * src_elem, row, k);
            if (st == IA_OK)
                st = ia_quantize_row(compute, row, dst, k);
            if (st != IA_OK) {
                st =
                    ia_error_set(st, "linear weight '%s' row %zu: %s", name, i, ia_error_message());
                goto fail;
            }
        }
    }
    if (compute == IA_DTYPE_Q8_0) {
        /* Q8_0 is interleaved for quant_gemm.c's tiles (cpu_internal.h). */
        uint8_t *rows = w->data;
        w->n_panels = (n + 15) / 16 * 2;
        w->data = ia_malloc_aligned(cpu_q8_0_packed_bytes(n, k) + 64, 64);
        if (!w->data) {
            ia_free_aligned(rows);
            st = IA_ENOMEM;
            goto fail;
        }
        cpu_q8_0_interleave(rows, n, k, w->data);
        ia_free_aligned(rows);
    }
    free(row);
    *out = w;
    return IA_OK;

fail:
    free(row);
    cpu_weight_free(w);
    return st;
}

/* ---- the driver ------------------------------------------------------------------------- */

typedef struct qlinear_job {
    cpu_qdot_fn dot;
    void (*quantize_qa32)(const float *x, cpu_qa32 *dst, size_t k);
    void (*quantize_q8k)(const float *x, void *dst, size_t k);
    const ia_packed_weight *w;
    const float *bias;
    ia_activation act;
    const float *x;
    size_t ldx;
    float *y;
    size_t ldy;
    size_t m;
    bool k_quant;
    uint8_t *xq;     /* quantised rows of x */
    size_t xq_bytes; /* per row */
    size_t nb;       /* blocks per row */
    size_t rows_per; /* weight rows per task */
    size_t n_row_tasks;
    size_t acts_per; /* activation rows per task */
} qlinear_job;

static void qlinear_quantize_task(void *ctx, size_t task, int thread) {
    const qlinear_job *job = ctx;
    size_t i0 = task * 16, i1 = i0 + 16 < job->m ? i0 + 16 : job->m;
    for (size_t i = i0; i < i1; i++) {
        if (job->k_quant)
            job->quantize_q8k(job->x + i * job->ldx, job->xq + i * job->xq_bytes, job->w->k);
        else
            job->quantize_qa32(job->x + i * job->ldx, (cpu_qa32 *)(job->xq + i * job->xq_bytes),
                               job->w->k);
    }
    (void)thread;
}

static void qlinear_task(void *ctx, size_t task, int thread) {
    const qlinear_job *job = ctx;
    const ia_packed_weight *w = job->w;
    size_t r0 = (task % job->n_row_tasks) * job->rows_per;
    size_t r1 = r0 + job->rows_per < w->n ? r0 + job->rows_per : w->n;
    size_t i0 = (task / job->n_row_tasks) * job->acts_per;
    size_t i1 = i0 + job->acts_per < job->m ? i0 + job->acts_per : job->m;
    for (size_t i = i0; i < i1; i += CPU_GEMV_MAX_M) {
        int mm = (int)(i1 - i < CPU_GEMV_MAX_M ? i1 - i : CPU_GEMV_MAX_M);
        for (size_t r = r0; r < r1; r++) {
            float out[CPU_GEMV_MAX_M];
            job->dot(job->nb, (const uint8_t *)w->data + r * w->row_bytes,
                     job->xq + i * job->xq_bytes, job->xq_bytes, mm, out);
            float b = job->bias ? job->bias[r] : 0.0f;
            for (int t = 0; t < mm; t++)
                job->y[(i + (size_t)t) * job->ldy + r] = cpu_act_scalar(job->act, out[t] + b);
        }
    }
    (void)thread;
}

void cpu_quant_linear(const cpu_quant_kernels *qk, const ia_packed_weight *w, const float *bias,
                      ia_activation act, const float *x, size_t ldx, float *y, size_t ldy, size_t m,
                      ia_threadpool *pool) {
    if (m == 0)
        return;
    if (w->compute == IA_DTYPE_Q8_0) {
        cpu_q8_0_linear(qk, w, bias, act, x, ldx, y, ldy, m, pool);
        return;
    }
    bool k_quant = ia_dtype_get_info(w->compute)->block_elems == QK_K;
    qlinear_job job = {.dot = qk->dot[w->compute] ? qk->dot[w->compute]
                                                  : cpu_quant_generic.dot[w->compute],
                       .quantize_qa32 = qk->quantize_qa32 ? qk->quantize_qa32 : cpu_quantize_qa32,
                       .quantize_q8k = qk->quantize_q8k ? qk->quantize_q8k : cpu_quantize_q8k,
                       .w = w,
                       .bias = bias,
                       .act = act,
                       .x = x,
                       .ldx = ldx,
                       .y = y,
                       .ldy = ldy,
                       .m = m,
                       .k_quant = k_quant};
    job.nb = w->k / (k_quant ? QK_K : 32);
    job.xq_bytes = job.nb * (k_quant ? Q8K_BYTES : sizeof(cpu_qa32));
    /* Decode keeps the quantised x on the stack when it is small. */
    uint8_t stack[CPU_GEMV_MAX_M * 8192] __attribute__((aligned(64)));
    uint8_t *heap = NULL;
    if (m * job.xq_bytes <= sizeof stack) {
        job.xq = stack;
    } else {
        heap = ia_malloc_aligned(m * job.xq_bytes, 64);
        if (!heap) {
            ia_log(IA_LOG_ERROR, "linear: no memory for %zu quantised rows; output set to NaN", m);
            for (size_t i = 0; i < m; i++)
                for (size_t j = 0; j < w->n; j++)
                    y[i * ldy + j] = NAN;
            return;
        }
        job.xq = heap;
    }
    size_t threads = pool ? (size_t)ia_threadpool_size(pool) : 1;
    if (m <= 16)
        qlinear_quantize_task(&job, 0, 0);
    else
        ia_threadpool_run(pool, (m + 15) / 16, qlinear_quantize_task, &job);

    if (m <= CPU_GEMV_MAX_M) {
        /* A few contiguous runs of rows per thread: long streams for the
         * prefetcher, some slack for a thread that starts late. */
        size_t tasks = threads == 1 ? 1 : 4 * threads;
        if (tasks > w->n)
            tasks = w->n;
        job.rows_per = (w->n + tasks - 1) / tasks;
        job.acts_per = m;
    } else {
        job.rows_per = ROW_TILE;
        job.acts_per = ACT_TILE;
        /* Few tiles: narrower row tiles so every thread has work. */
        size_t act_tiles = (m + ACT_TILE - 1) / ACT_TILE;
        while (job.rows_per > 4 &&
               act_tiles * ((w->n + job.rows_per - 1) / job.rows_per) < 4 * threads)
            job.rows_per /= 2;
    }
    job.n_row_tasks = (w->n + job.rows_per - 1) / job.rows_per;
    size_t n_tasks = job.n_row_tasks * ((m + job.acts_per - 1) / job.acts_per);
    ia_threadpool_run(pool, n_tasks, qlinear_task, &job);
    ia_free_aligned(heap);
}
