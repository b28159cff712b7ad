/*
 * gemm: weight packing and the tiled, threaded linear driver of every CPU
 * variant, plus the portable micro-kernels of the generic variant.
 *
 * linear computes y = act(x W^T + bias) with W packed into panels of nr
 * output rows (see cpu_internal.h). The output is cut into tiles of mb rows x
 * nb columns, one thread-pool task each. Inside a tile the k dimension is
 * walked in blocks of about KC_TARGET so that one panel's k-block (nr x kc,
 * 16-32 KiB in f32) stays in L1 while every mr-row group of the tile streams
 * past it, and the tile's rows of x (mb x kc) stay in L2 across panels. The
 * first k-block starts the accumulators from the bias and the last applies
 * the activation, so bias and activation never cost a separate pass over y.
 *
 * For tiny m (one short sentence) there is little to reuse: the tile is all
 * m rows and the columns are split finely so that every thread streams its
 * own share of the weights, which is what bounds that case. Such a tile walks
 * each panel through all of k before the next (linear_task_small), so a task
 * reads one contiguous run of memory, and the kernel prefetches the next
 * k-block while it multiplies the current one. Decode (m = 1..4)
 * goes to the variant's GEMV kernel when it has one: whole-k panels, each a
 * contiguous stream, split into one run of panels per thread-pool task.
 *
 * Whatever the path, every output is one chain: it starts from its bias (or
 * zero) and adds x[k] * w[k] for k in order (a fused multiply-add in the
 * vector variants), carried from one k-block to the next through y (a float
 * stored and reloaded keeps its bits), and the activation is applied to the
 * finished sum; k-blocks depend on k alone and no path splits k among
 * threads. So row i of y has the same bits for any m, tiling and thread
 * count (tests/kernels/test_linear.c checks it), which the server needs to
 * batch requests and decode steps without changing anyone's results.
 *
 * f16 weights (IA_DTYPE_F16) keep the f32 panel layout at 2 bytes a value;
 * packing from an F16 tensor copies the bits, from f32 or bf16 it rounds to
 * nearest even.
 *
 * Quantised weights (quant.h types) are packed and run by quant_dot.c; this
 * file only routes them there.
 */
#include "kernels/cpu/cpu_internal.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "ia/quant.h"

#define KC_TARGET 192 /* floats of k per block: a 16-wide f32 panel block is 12 KiB */
#define MB_GROUPS 8   /* mr-row groups per tile for large m */
#define NB_LARGE 128  /* columns per tile for large m */

/* ---- packing ---------------------------------------------------------------- */

static size_t round_up(size_t v, size_t to) { return (v + to - 1) / to * to; }

ia_status cpu_weight_parts_shape(const ia_tensor *const *parts, int n_parts, ia_dtype also,
                                 size_t *n_out, size_t *k_out) {
    size_t n = 0, k = 0;
    if (n_parts < 1 || !parts)
        return ia_error_set(IA_EINVAL, "linear weights: no tensors to pack");
    for (int p = 0; p < n_parts; p++) {
        const ia_tensor *t = parts[p];
        const char *name = t->name ? t->name : "(unnamed)";
        if (t->ndim != 2 || t->shape[0] <= 0 || t->shape[1] <= 0)
            return ia_error_set(IA_EINVAL, "linear weight '%s' must be a non-empty 2-D matrix",
                                name);
        if (t->dtype != IA_DTYPE_F32 && t->dtype != IA_DTYPE_F16 && t->dtype != IA_DTYPE_BF16 &&
            t->dtype != also)
            return ia_error_set(IA_EUNSUPPORTED,
                                "linear weight '%s' has type %s; f32, f16, bf16%s%s "
                                "expected",
                                name, ia_dtype_name(t->dtype), also != IA_DTYPE_COUNT ? " or " : "",
                                also != IA_DTYPE_COUNT ? ia_dtype_name(also) : "");
        if (p > 0 && (size_t)t->shape[1] != k)
            return ia_error_set(IA_EINVAL,
                                "linear weight '%s' has %lld inputs but the first part has %zu; "
                                "fused parts must share k",
                                name, (long long)t->shape[1], k);
        k = (size_t)t->shape[1];
        n += (size_t)t->shape[0];
    }
    *n_out = n;
    *k_out = k;
    return IA_OK;
}

ia_status cpu_weight_pack(const ia_tensor *const *parts, int n_parts, ia_dtype compute, int nr,
                          ia_packed_weight **out) {
    ia_packed_weight *w = NULL;
    float *row = NULL;
    ia_status st = IA_OK;
    *out = NULL;
    if (ia_dtype_is_quantized(compute))
        return cpu_quant_weight_pack(parts, n_parts, compute, nr, out);
    if (compute != IA_DTYPE_F32 && compute != IA_DTYPE_F16 && compute != IA_DTYPE_BF16) {
        st = ia_error_set(IA_EUNSUPPORTED,
                          "linear weights: compute type %s is not supported "
                          "by the CPU backend (use f32, f16, bf16 or a quantised type)",
                          ia_dtype_name(compute));
        goto fail;
    }
    size_t n = 0, k = 0;
    if ((st = cpu_weight_parts_shape(parts, n_parts, IA_DTYPE_COUNT, &n, &k)))
        goto fail;

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
    size_t kp = compute == IA_DTYPE_BF16 ? round_up(k, 2) : k;
    size_t elem = compute == IA_DTYPE_F32 ? 4 : 2, bytes;
    if (!ia_size_mul((size_t)nr, kp, &w->panel_elems) ||
        !ia_size_mul(w->panel_elems, w->n_panels, &bytes) || !ia_size_mul(bytes, elem, &bytes)) {
        st = ia_error_set(IA_ENOMEM, "linear weights of %zu x %zu overflow memory sizes", n, k);
        goto fail;
    }
    w->data = ia_malloc_aligned(bytes, 64);
    row = ia_malloc_array(k, sizeof *row);
    if (!w->data || !row) {
        st = IA_ENOMEM;
        goto fail;
    }
    memset(w->data, 0, bytes); /* the padding of the last panel and of odd k */

    size_t r = 0;
    for (int p = 0; p < n_parts; p++) {
        const ia_tensor *t = parts[p];
        size_t src_elem = t->dtype == IA_DTYPE_F32 ? 4 : 2;
        for (size_t i = 0; i < (size_t)t->shape[0]; i++, r++) {
            const char *src = (const char *)t->data + i * k * src_elem;
            size_t panel = r / (size_t)nr, j = r % (size_t)nr;
            if (compute == IA_DTYPE_F16 && t->dtype == IA_DTYPE_F16) {
                /* Bits as they are: no round trip through f32. */
                uint16_t *dst = (uint16_t *)w->data + panel * w->panel_elems;
                const uint16_t *h = (const uint16_t *)src;
                for (size_t kk = 0; kk < k; kk++)
                    dst[kk * (size_t)nr + j] = h[kk];
                continue;
            }
            st = ia_convert_to_f32(t->dtype, src, row, k);
            if (st != IA_OK)
                goto fail;
            if (compute == IA_DTYPE_F16) {
                uint16_t *dst = (uint16_t *)w->data + panel * w->panel_elems;
                for (size_t kk = 0; kk < k; kk++)
                    dst[kk * (size_t)nr + j] = ia_f32_to_f16(row[kk]);
            } else if (compute == IA_DTYPE_F32) {
                float *dst = (float *)w->data + panel * w->panel_elems;
                for (size_t kk = 0; kk < k; kk++)
                    dst[kk * (size_t)nr + j] = row[kk];
            } else {
                uint16_t *dst = (uint16_t *)w->data + panel * w->panel_elems;
                for (size_t kk = 0; kk < k; kk++)
                    dst[(kk / 2) * (size_t)nr * 2 + j * 2 + (kk & 1)] = ia_f32_to_bf16(row[kk]);
            }
        }
    }
    free(row);
    *out = w;
    return IA_OK;

fail:
    free(row);
    cpu_weight_free(w);
    return st;
}

void cpu_weight_free(ia_packed_weight *w) {
    if (!w)
        return;
    ia_free_aligned(w->data);
    free(w);
}

void cpu_weight_shape(const ia_packed_weight *w, size_t *n, size_t *k) {
    *n = w->n;
    *k = w->k;
}

/* ---- the driver ----------------------------------------------------------------- */

typedef struct linear_job {
    const cpu_gemm_kernel *kern;
    const ia_packed_weight *w;
    const float *bias;
    ia_activation act;
    const float *x;
    size_t ldx;
    float *y;
    size_t ldy;
    size_t m;
    size_t mb, nb, kc; /* tile rows, tile columns (multiple of nr), k-block */
    size_t n_col_tiles;
    bool small; /* m <= 4 mr: one row tile, walked by linear_task_small */
} linear_job;

/* Pointer to panel p of the packed weight at k offset k0 (even for bf16). */
static const void *panel_at(const ia_packed_weight *w, size_t p, size_t k0) {
    if (w->compute == IA_DTYPE_F32)
        return (const float *)w->data + p * w->panel_elems + k0 * (size_t)w->nr;
    return (const uint16_t *)w->data + p * w->panel_elems + k0 * (size_t)w->nr;
}

/* One micro-kernel call; an edge panel (fewer than nr real columns) goes
 * through a scratch tile so that kernels never need masked loads or stores. */
static void run_ukr(const linear_job *job, cpu_ukr_fn ukr, cpu_ukr_args *a, size_t col0) {
    size_t nr = (size_t)job->kern->nr;
    size_t ncols = job->w->n - col0;
    if (ncols >= nr) {
        a->bias = job->bias ? job->bias + col0 : NULL;
        ukr(a);
        return;
    }
    float tile[CPU_MR_MAX * CPU_NR_MAX], bias[CPU_NR_MAX] = {0};
    float *c = a->c;
    size_t ldc = a->ldc;
    if (!a->first)
        for (int i = 0; i < a->mr; i++)
            memcpy(tile + (size_t)i * nr, c + (size_t)i * ldc, ncols * sizeof(float));
    if (job->bias)
        memcpy(bias, job->bias + col0, ncols * sizeof(float));
    a->bias = job->bias ? bias : NULL;
    a->c = tile;
    a->ldc = nr;
    ukr(a);
    for (int i = 0; i < a->mr; i++)
        memcpy(c + (size_t)i * ldc, tile + (size_t)i * nr, ncols * sizeof(float));
    a->c = c;
    a->ldc = ldc;
}

/* The latency case (the tile is all m rows): each panel is walked from the
 * first k-block to the last before the next, so a task's weights are one
 * contiguous stream (panels lie back to back), and while the row groups run
 * over a block the kernel prefetches the block that follows it, each group a
 * equal share, so that requests to memory stay spread over the whole block's
 * work instead of bunching up in the first group. The C tile of the panel
 * (m x nr) stays in L1 across the k-blocks and x (m rows, at most 24 x k) in
 * L2. */
static void linear_task_small(const linear_job *job, cpu_ukr_fn ukr, size_t n0, size_t n1) {
    const ia_packed_weight *w = job->w;
    size_t mr = (size_t)job->kern->mr, nr = (size_t)job->kern->nr;
    size_t elem = w->compute == IA_DTYPE_F32 ? sizeof(float) : sizeof(uint16_t);
    for (size_t col = n0; col < n1; col += nr) {
        for (size_t k0 = 0; k0 < w->k; k0 += job->kc) {
            size_t kc = w->k - k0 < job->kc ? w->k - k0 : job->kc;
            cpu_ukr_args a = {.kc = kc,
                              .ldc = job->ldy,
                              .first = k0 == 0,
                              .last = k0 + kc >= w->k,
                              .act = job->act,
                              .b = panel_at(w, col / nr, k0),
                              .lda = job->ldx};
            const char *next = (const char *)a.b + kc * nr * elem;
            size_t groups = (job->m + mr - 1) / mr, bytes = kc * nr * elem;
            a.pf_step = nr * elem / groups;
            for (size_t i = 0, g = 0; i < job->m; i += mr, g++) {
                a.mr = (int)(job->m - i < mr ? job->m - i : mr);
                a.a = job->x + i * job->ldx + k0;
                a.c = job->y + i * job->ldy + col;
                a.ldc = job->ldy;
                a.pf = next + g * bytes / groups;
                run_ukr(job, ukr, &a, col);
            }
        }
    }
}

static void linear_task(void *ctx, size_t task, int thread) {
    const linear_job *job = ctx;
    const cpu_gemm_kernel *kern = job->kern;
    const ia_packed_weight *w = job->w;
    size_t mr = (size_t)kern->mr, nr = (size_t)kern->nr;
    size_t m0 = (task / job->n_col_tiles) * job->mb;
    size_t n0 = (task % job->n_col_tiles) * job->nb;
    size_t m1 = m0 + job->mb < job->m ? m0 + job->mb : job->m;
    size_t n1 = n0 + job->nb < w->n ? n0 + job->nb : w->n;
    bool bf16 = w->compute == IA_DTYPE_BF16;
    cpu_ukr_fn ukr = bf16 ? kern->bf16 : w->compute == IA_DTYPE_F16 ? kern->f16 : kern->f32;
    bool pack_a = bf16 && kern->bf16_pack_a;
    if (job->small && !pack_a) {
        linear_task_small(job, ukr, n0, n1);
        return;
    }
    /* bf16 pairs of this tile's rows of x for packed-A kernels: mb x kc/2
     * pairs, on the stack so that nothing is allocated per call. */
    uint32_t apack[pack_a ? (CPU_MR_MAX * MB_GROUPS * KC_TARGET / 2) : 1];

    for (size_t k0 = 0; k0 < w->k; k0 += job->kc) {
        size_t kc = w->k - k0 < job->kc ? w->k - k0 : job->kc;
        const void *a_base = job->x + m0 * job->ldx + k0;
        size_t lda = job->ldx;
        if (pack_a) {
            lda = (kc + 1) / 2;
            kern->bf16_pack_a(job->x + m0 * job->ldx, job->ldx, m1 - m0, k0, kc, apack, lda);
            a_base = apack;
        }
        cpu_ukr_args a = {
            .kc = kc, .ldc = job->ldy, .first = k0 == 0, .last = k0 + kc >= w->k, .act = job->act};
        for (size_t col = n0; col < n1; col += nr) {
            a.b = panel_at(w, col / nr, k0);
            for (size_t i = m0; i < m1; i += mr) {
                a.mr = (int)(m1 - i < mr ? m1 - i : mr);
                a.a = pack_a ? (const void *)((const uint32_t *)a_base + (i - m0) * lda)
                             : (const void *)((const float *)a_base + (i - m0) * lda);
                a.lda = lda;
                a.c = job->y + i * job->ldy + col;
                a.ldc = job->ldy;
                run_ukr(job, ukr, &a, col);
            }
        }
    }
    (void)thread;
}

typedef struct gemv_job {
    const cpu_gemm_kernel *kern;
    cpu_gemv_args args; /* p0, p1 set per task */
    size_t per;         /* panels per task */
} gemv_job;

static void gemv_task(void *ctx, size_t task, int thread) {
    const gemv_job *job = ctx;
    cpu_gemv_args a = job->args;
    a.p0 = task * job->per;
    a.p1 = a.p0 + job->per < a.w->n_panels ? a.p0 + job->per : a.w->n_panels;
    job->kern->gemv(&a);
    (void)thread;
}

/* Decode: an equal run of panels per task, few tasks per thread (a task
 * switch costs a claim on a shared counter, and a long contiguous run keeps
 * the hardware prefetcher ahead), but enough that a late thread can be
 * balanced by the others. */
static void gemv_run(const cpu_gemm_kernel *kern, const ia_packed_weight *w, const float *bias,
                     ia_activation act, const float *x, size_t ldx, float *y, size_t ldy, size_t m,
                     ia_threadpool *pool) {
    size_t threads = pool ? (size_t)ia_threadpool_size(pool) : 1;
    size_t tasks = threads == 1 ? 1 : 2 * threads;
    if (tasks > w->n_panels)
        tasks = w->n_panels;
    gemv_job job = {
        .kern = kern,
        .args = {.w = w, .x = x, .ldx = ldx, .m = m, .y = y, .ldy = ldy, .bias = bias, .act = act}};
    job.per = (w->n_panels + tasks - 1) / tasks;
    ia_threadpool_run(pool, (w->n_panels + job.per - 1) / job.per, gemv_task, &job);
}

void cpu_linear_run(const cpu_gemm_kernel *kern, const ia_packed_weight *w, const float *bias,
                    ia_activation act, const float *x, size_t ldx, float *y, size_t ldy, size_t m,
                    ia_threadpool *pool) {
    assert(w->nr == kern->nr && "weights packed by another CPU variant");
    if (m == 0)
        return;
    if (ia_dtype_is_quantized(w->compute)) {
        cpu_quant_linear(kern->quant ? kern->quant : &cpu_quant_generic, w, bias, act, x, ldx, y,
                         ldy, m, pool);
        return;
    }
    /* A GEMV computes in f32: a kernel that rounds x to bf16 for bf16
     * weights (bf16_pack_a) keeps those, or a row's bits would depend on m. */
    if (m <= CPU_GEMV_MAX_M && kern->gemv && !(w->compute == IA_DTYPE_BF16 && kern->bf16_pack_a)) {
        gemv_run(kern, w, bias, act, x, ldx, y, ldy, m, pool);
        return;
    }
    size_t mr = (size_t)kern->mr, nr = (size_t)kern->nr;
    size_t threads = pool ? (size_t)ia_threadpool_size(pool) : 1;
    linear_job job = {.kern = kern,
                      .w = w,
                      .bias = bias,
                      .act = act,
                      .x = x,
                      .ldx = ldx,
                      .y = y,
                      .ldy = ldy,
                      .m = m};
    /* k-blocks of near-equal length, even so that bf16 pairs never straddle. */
    size_t n_kb = (w->k + KC_TARGET - 1) / KC_TARGET;
    job.kc = round_up((w->k + n_kb - 1) / n_kb, 2);
    if (m <= 4 * mr) {
        /* Latency case: one row tile, columns split so every thread has
         * several tasks to balance. */
        job.mb = m;
        job.small = true;
        size_t per = w->n_panels / (4 * threads);
        job.nb = (per ? per : 1) * nr;
    } else {
        job.mb = MB_GROUPS * mr;
        job.nb = NB_LARGE > nr ? NB_LARGE / nr * nr : nr;
        size_t row_tiles = (m + job.mb - 1) / job.mb;
        /* Few row tiles: narrow the column tiles until every thread has work. */
        while (job.nb > nr && row_tiles * ((w->n + job.nb - 1) / job.nb) < 4 * threads)
            job.nb -= nr;
    }
    job.n_col_tiles = (w->n + job.nb - 1) / job.nb;
    size_t n_tasks = ((m + job.mb - 1) / job.mb) * job.n_col_tiles;
    ia_threadpool_run(pool, n_tasks, linear_task, &job);
}

/* ---- generic micro-kernels ----------------------------------------------------- */

#define GEN_MR 4
#define GEN_NR 16

/* Accumulates one row at a time; the 16-wide inner loop is what baseline
 * SSE2 auto-vectorisation handles well. */
static void ukr_generic(const cpu_ukr_args *a, ia_dtype type) {
    for (int i = 0; i < a->mr; i++) {
        float acc[GEN_NR];
        float *c = a->c + (size_t)i * a->ldc;
        for (int j = 0; j < GEN_NR; j++)
            acc[j] = a->first ? (a->bias ? a->bias[j] : 0.0f) : c[j];
        const float *x = (const float *)a->a + (size_t)i * a->lda;
        if (type == IA_DTYPE_F32) {
            const float *b = a->b;
            for (size_t k = 0; k < a->kc; k++, b += GEN_NR)
                for (int j = 0; j < GEN_NR; j++)
                    acc[j] += x[k] * b[j];
        } else if (type == IA_DTYPE_F16) {
            const uint16_t *b = a->b;
            for (size_t k = 0; k < a->kc; k++, b += GEN_NR)
                for (int j = 0; j < GEN_NR; j++)
                    acc[j] += x[k] * ia_f16_to_f32(b[j]);
        } else {
            const uint16_t *b = a->b;
            for (size_t k = 0; k < a->kc; k++) {
                const uint16_t *bp = b + (k / 2) * GEN_NR * 2 + (k & 1);
                for (int j = 0; j < GEN_NR; j++)
                    acc[j] += x[k] * ia_bf16_to_f32(bp[2 * j]);
            }
        }
        for (int j = 0; j < GEN_NR; j++)
            c[j] = a->last ? cpu_act_scalar(a->act, acc[j]) : acc[j];
    }
}

static void ukr_generic_f32(const cpu_ukr_args *a) { ukr_generic(a, IA_DTYPE_F32); }
static void ukr_generic_f16(const cpu_ukr_args *a) { ukr_generic(a, IA_DTYPE_F16); }
static void ukr_generic_bf16(const cpu_ukr_args *a) { ukr_generic(a, IA_DTYPE_BF16); }

/* No gemv: the generic variant is the reference the GEMV kernels are tested
 * against, through the tiled micro-kernel path. */
const cpu_gemm_kernel cpu_gemm_generic = {.mr = GEN_MR,
                                          .nr = GEN_NR,
                                          .f32 = ukr_generic_f32,
                                          .bf16 = ukr_generic_bf16,
                                          .f16 = ukr_generic_f16,
                                          .quant = &cpu_quant_generic};
