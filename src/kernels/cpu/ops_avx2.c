/*
 * ops_avx2: the AVX2+FMA versions of the non-GEMM ops (layer norm, attention,
 * softmax, L2 normalisation, activations); the AVX-512 variant uses them too.
 *
 * Attention is the one with structure. A task is one (sequence, head): K of
 * that head is first transposed into a stack buffer (head_dim x L, keys
 * contiguous) so that both products become small register-blocked GEMMs with
 * a broadcast operand, like the linear micro-kernel: S = scale Q K^T takes 4
 * query rows x 16 keys per block (broadcast q, 16 keys per 2 loads), and
 * O = P V takes 4 rows x 16 head dims (broadcast p, V rows loaded as they
 * sit in memory). Softmax runs on the 4 score rows in between with the
 * vector exp; the 1/sum is folded into the output store. A block past the
 * sequence end repeats its last row instead of branching in the kernels.
 * Heads that do not fit the fast path (head_dim not a multiple of 8, or
 * larger than HD_MAX, or sequences longer than L_MAX) use the generic code.
 */
#include "kernels/cpu/cpu_internal.h"
#include "kernels/cpu/simd_avx2.h"

#include <math.h>

/* ---- layer norm ------------------------------------------------------------------------- */

typedef struct norm_job {
    const float *x, *residual, *gamma, *beta;
    size_t ldx, ldr, ldo, cols, rows;
    float eps;
    float *out;
} norm_job;

#define NORM_ROWS_PER_TASK 16

static void norm_row(const norm_job *j, size_t r) {
    const float *src = j->x + r * j->ldx;
    float *o = j->out + r * j->ldo;
    size_t n = j->cols, n8 = n & ~(size_t)7, c;
    __m256i tail = v_tail_mask(n - n8);
    if (j->residual) {
        /* Stage x + residual in out: element-wise, so aliasing is safe. */
        const float *res = j->residual + r * j->ldr;
        for (c = 0; c < n8; c += 8)
            _mm256_storeu_ps(o + c,
                             _mm256_add_ps(_mm256_loadu_ps(src + c), _mm256_loadu_ps(res + c)));
        if (c < n)
            _mm256_maskstore_ps(o + c, tail,
                                _mm256_add_ps(_mm256_maskload_ps(src + c, tail),
                                              _mm256_maskload_ps(res + c, tail)));
        src = o;
    }
    /* Everything is computed relative to the row's first value: for rows with
     * a large common offset the differences are exact and the sums stay small,
     * so the mean and the centred values keep f32's full precision. */
    __m256 shift = _mm256_set1_ps(src[0]);
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    for (c = 0; c + 16 <= n8; c += 16) {
        s0 = _mm256_add_ps(s0, _mm256_sub_ps(_mm256_loadu_ps(src + c), shift));
        s1 = _mm256_add_ps(s1, _mm256_sub_ps(_mm256_loadu_ps(src + c + 8), shift));
    }
    for (; c < n8; c += 8)
        s0 = _mm256_add_ps(s0, _mm256_sub_ps(_mm256_loadu_ps(src + c), shift));
    if (c < n)
        s1 =
            _mm256_add_ps(s1, _mm256_and_ps(_mm256_sub_ps(_mm256_maskload_ps(src + c, tail), shift),
                                            _mm256_castsi256_ps(tail)));
    float mean = (float)((double)v_hsum(_mm256_add_ps(s0, s1)) / (double)n);
    /* Second pass on centred values: no cancellation in the variance. */
    __m256 vm = _mm256_set1_ps(mean);
#define CENTRED(v) _mm256_sub_ps(_mm256_sub_ps((v), shift), vm)
    s0 = s1 = _mm256_setzero_ps();
    for (c = 0; c + 16 <= n8; c += 16) {
        __m256 d0 = CENTRED(_mm256_loadu_ps(src + c));
        __m256 d1 = CENTRED(_mm256_loadu_ps(src + c + 8));
        s0 = _mm256_fmadd_ps(d0, d0, s0);
        s1 = _mm256_fmadd_ps(d1, d1, s1);
    }
    for (; c < n8; c += 8) {
        __m256 d0 = CENTRED(_mm256_loadu_ps(src + c));
        s0 = _mm256_fmadd_ps(d0, d0, s0);
    }
    if (c < n) {
        __m256 d0 =
            _mm256_and_ps(CENTRED(_mm256_maskload_ps(src + c, tail)), _mm256_castsi256_ps(tail));
        s1 = _mm256_fmadd_ps(d0, d0, s1);
    }
    double var = (double)v_hsum(_mm256_add_ps(s0, s1)) / (double)n;
    __m256 vr = _mm256_set1_ps((float)(1.0 / sqrt(var + (double)j->eps)));
    for (c = 0; c < n8; c += 8) {
        __m256 v = _mm256_mul_ps(CENTRED(_mm256_loadu_ps(src + c)), vr);
        v = _mm256_fmadd_ps(v, _mm256_loadu_ps(j->gamma + c), _mm256_loadu_ps(j->beta + c));
        _mm256_storeu_ps(o + c, v);
    }
    if (c < n) {
        __m256 v = _mm256_mul_ps(CENTRED(_mm256_maskload_ps(src + c, tail)), vr);
        v = _mm256_fmadd_ps(v, _mm256_maskload_ps(j->gamma + c, tail),
                            _mm256_maskload_ps(j->beta + c, tail));
        _mm256_maskstore_ps(o + c, tail, v);
    }
#undef CENTRED
}

static void norm_task(void *ctx, size_t task, int thread) {
    const norm_job *j = ctx;
    size_t r0 = task * NORM_ROWS_PER_TASK;
    size_t r1 = r0 + NORM_ROWS_PER_TASK < j->rows ? r0 + NORM_ROWS_PER_TASK : j->rows;
    for (size_t r = r0; r < r1; r++)
        norm_row(j, r);
    (void)thread;
}

void cpu_layer_norm_avx2(const float *x, size_t ldx, const float *residual, size_t ldr,
                         const float *gamma, const float *beta, float eps, size_t rows, size_t cols,
                         float *out, size_t ldo, ia_threadpool *pool) {
    norm_job j = {x, residual, gamma, beta, ldx, ldr, ldo, cols, rows, eps, out};
    size_t tasks = (rows + NORM_ROWS_PER_TASK - 1) / NORM_ROWS_PER_TASK;
    if (tasks && cols)
        ia_threadpool_run(pool, tasks, norm_task, &j);
}

/* ---- softmax, L2 norm, activations -------------------------------------------------------- */

static void softmax_row(float *row, size_t n) {
    size_t n8 = n & ~(size_t)7, c;
    __m256i tail = v_tail_mask(n - n8);
    const __m256 ninf = _mm256_set1_ps(-INFINITY);
    __m256 mx = ninf;
    for (c = 0; c < n8; c += 8)
        mx = _mm256_max_ps(mx, _mm256_loadu_ps(row + c));
    if (c < n)
        mx = _mm256_max_ps(mx, _mm256_blendv_ps(ninf, _mm256_maskload_ps(row + c, tail),
                                                _mm256_castsi256_ps(tail)));
    __m256 vm = _mm256_set1_ps(v_hmax(mx));
    __m256 sum = _mm256_setzero_ps();
    for (c = 0; c < n8; c += 8) {
        __m256 e = v_exp(_mm256_sub_ps(_mm256_loadu_ps(row + c), vm));
        _mm256_storeu_ps(row + c, e);
        sum = _mm256_add_ps(sum, e);
    }
    if (c < n) {
        __m256 e = v_exp(_mm256_sub_ps(_mm256_maskload_ps(row + c, tail), vm));
        e = _mm256_and_ps(e, _mm256_castsi256_ps(tail));
        _mm256_maskstore_ps(row + c, tail, e);
        sum = _mm256_add_ps(sum, e);
    }
    __m256 inv = _mm256_set1_ps(1.0f / v_hsum(sum));
    for (c = 0; c < n8; c += 8)
        _mm256_storeu_ps(row + c, _mm256_mul_ps(_mm256_loadu_ps(row + c), inv));
    if (c < n)
        _mm256_maskstore_ps(row + c, tail, _mm256_mul_ps(_mm256_maskload_ps(row + c, tail), inv));
}

void cpu_softmax_avx2(float *x, size_t ld, size_t rows, size_t cols) {
    if (cols == 0)
        return;
    for (size_t r = 0; r < rows; r++)
        softmax_row(x + r * ld, cols);
}

void cpu_l2_normalize_avx2(float *x, size_t ld, size_t rows, size_t cols) {
    size_t n8 = cols & ~(size_t)7, c;
    __m256i tail = v_tail_mask(cols - n8);
    for (size_t r = 0; r < rows; r++) {
        float *row = x + r * ld;
        __m256 sq = _mm256_setzero_ps();
        for (c = 0; c < n8; c += 8) {
            __m256 v = _mm256_loadu_ps(row + c);
            sq = _mm256_fmadd_ps(v, v, sq);
        }
        if (c < cols) {
            __m256 v = _mm256_maskload_ps(row + c, tail);
            sq = _mm256_fmadd_ps(v, v, sq);
        }
        double norm = sqrt((double)v_hsum(sq));
        if (norm == 0.0)
            continue; /* zero rows stay zero */
        __m256 inv = _mm256_set1_ps((float)(1.0 / (norm > 1e-12 ? norm : 1e-12)));
        for (c = 0; c < n8; c += 8)
            _mm256_storeu_ps(row + c, _mm256_mul_ps(_mm256_loadu_ps(row + c), inv));
        if (c < cols)
            _mm256_maskstore_ps(row + c, tail,
                                _mm256_mul_ps(_mm256_maskload_ps(row + c, tail), inv));
    }
}

void cpu_activate_avx2(ia_activation act, float *x, size_t n) {
    if (act == IA_ACT_NONE)
        return;
    size_t n8 = n & ~(size_t)7, i;
    for (i = 0; i < n8; i += 8)
        _mm256_storeu_ps(x + i, v_act(act, _mm256_loadu_ps(x + i)));
    if (i < n) {
        __m256i tail = v_tail_mask(n - n8);
        _mm256_maskstore_ps(x + i, tail, v_act(act, _mm256_maskload_ps(x + i, tail)));
    }
}

/* ---- attention ----------------------------------------------------------------------------- */

#define QB 4       /* query rows per block */
#define HD_MAX 128 /* head_dim of the fast path, a multiple of 8 */
#define L_MAX 1024 /* longest sequence of the fast path (HD_MAX * L_MAX floats of stack) */
#define KT_MAX (64 * 1024)

/* Four query rows at a time, accumulators as named variables (GCC keeps an
 * array of them in memory). X(r) expands a statement for rows 0..3. */
#define QROWS(X) X(0) X(1) X(2) X(3)

/* S[r][j0..j0+16) = scale * q_r . k_j for the 4 rows; kt is head_dim x ldk. */
static void scores_block(const float *const q[QB], const float *kt, size_t ldk, int hd, size_t nk,
                         float scale, float *s, size_t lds) {
    const __m256 vs = _mm256_set1_ps(scale);
    const float *q0 = q[0], *q1 = q[1], *q2 = q[2], *q3 = q[3];
    for (size_t j0 = 0; j0 < nk; j0 += 16) {
#define ZERO(r) __m256 a##r##0 = _mm256_setzero_ps(), a##r##1 = _mm256_setzero_ps();
        QROWS(ZERO)
        const float *kp = kt + j0;
        for (int d = 0; d < hd; d++, kp += ldk) {
            __m256 k0 = _mm256_load_ps(kp), k1 = _mm256_load_ps(kp + 8);
#define QK(r)                                       \
    {                                               \
        __m256 qv = _mm256_broadcast_ss(q##r + d);  \
        a##r##0 = _mm256_fmadd_ps(qv, k0, a##r##0); \
        a##r##1 = _mm256_fmadd_ps(qv, k1, a##r##1); \
    }
            QROWS(QK)
        }
#define SSTORE(r)                                                  \
    _mm256_store_ps(s + r * lds + j0, _mm256_mul_ps(a##r##0, vs)); \
    _mm256_store_ps(s + r * lds + j0 + 8, _mm256_mul_ps(a##r##1, vs));
        QROWS(SSTORE)
    }
}

/* out rows (4, the first `rows` stored) of head dims [d0, d0 + 8 * (1 + two))
 * = P V / sum, P in s (4 rows, lds apart), V rows ldv apart. */
static void pv_block(const float *s, size_t lds, const float *v, size_t ldv, size_t nk, bool two,
                     const float inv[QB], float *const o[QB], int rows) {
    QROWS(ZERO)
    for (size_t j = 0; j < nk; j++, v += ldv) {
        __m256 v0 = _mm256_loadu_ps(v);
        __m256 v1 = two ? _mm256_loadu_ps(v + 8) : _mm256_setzero_ps();
#define PV(r)                                            \
    {                                                    \
        __m256 p = _mm256_broadcast_ss(s + r * lds + j); \
        a##r##0 = _mm256_fmadd_ps(p, v0, a##r##0);       \
        a##r##1 = _mm256_fmadd_ps(p, v1, a##r##1);       \
    }
        QROWS(PV)
    }
#define OSTORE(r)                                                   \
    if (r < rows) {                                                 \
        __m256 vi = _mm256_set1_ps(inv[r]);                         \
        _mm256_storeu_ps(o[r], _mm256_mul_ps(a##r##0, vi));         \
        if (two)                                                    \
            _mm256_storeu_ps(o[r] + 8, _mm256_mul_ps(a##r##1, vi)); \
    }
    QROWS(OSTORE)
}

/* Turns s[0, nk) into exp(s - max) over the first `valid` entries and zero
 * after them (causal masking); returns 1 / sum. */
static float softmax_scores(float *s, size_t valid, size_t nk) {
    __m256 mx = _mm256_set1_ps(-INFINITY);
    size_t j = 0;
    for (; j + 8 <= valid; j += 8)
        mx = _mm256_max_ps(mx, _mm256_load_ps(s + j));
    float m = v_hmax(mx);
    for (; j < valid; j++)
        m = s[j] > m ? s[j] : m;
    __m256 vm = _mm256_set1_ps(m), sum = _mm256_setzero_ps();
    for (j = 0; j < valid; j += 8) {
        __m256 e = v_exp(_mm256_sub_ps(_mm256_load_ps(s + j), vm));
        if (j + 8 > valid) /* lanes past `valid` are masked keys */
            e = _mm256_and_ps(e, _mm256_castsi256_ps(v_tail_mask(valid - j)));
        _mm256_store_ps(s + j, e);
        sum = _mm256_add_ps(sum, e);
    }
    for (; j < nk; j += 8)
        _mm256_store_ps(s + j, _mm256_setzero_ps());
    return 1.0f / v_hsum(sum);
}

/* Adds the relative-position bias to the scores of the QB query rows at
 * positions pos[] (keys 0..nk). Scalar: it is one add per score, next to a
 * head_dim-long dot product. */
static void add_rel_bias(const ia_attention_args *a, int head, const size_t pos[QB], size_t nk,
                         float *s, size_t lds) {
    size_t heads = (size_t)a->n_heads;
    for (int r = 0; r < QB; r++) {
        const float *b = a->rel_bias + ((size_t)a->rel_bias_offset - pos[r]) * heads + (size_t)head;
        float *row = s + (size_t)r * lds;
        for (size_t j = 0; j < nk; j++)
            row[j] += b[j * heads];
    }
}

typedef struct attn_scratch {
    _Alignas(32) float kt[KT_MAX];
    _Alignas(32) float s[QB * L_MAX];
} attn_scratch;

static void attention_head(const ia_attention_args *a, size_t seq, int head, attn_scratch *sc) {
    size_t t0 = (size_t)a->seq_start[seq], len = (size_t)a->seq_start[seq + 1] - t0;
    size_t off = (size_t)head * (size_t)a->head_dim;
    int hd = a->head_dim;
    size_t ldk = (len + 15) & ~(size_t)15;
    /* Key-major reads (each key's head slice is one or two cache lines) and
     * scattered writes into kt, which is small enough to stay in L1/L2. */
    for (size_t j = 0; j < len; j++) {
        const float *kr = a->k + (t0 + j) * a->ld_k + off;
        for (int d = 0; d < hd; d++)
            sc->kt[(size_t)d * ldk + j] = kr[d];
    }
    for (int d = 0; d < hd; d++)
        for (size_t j = len; j < ldk; j++)
            sc->kt[(size_t)d * ldk + j] = 0.0f;
    for (size_t i0 = 0; i0 < len; i0 += QB) {
        const float *q[QB];
        size_t pos[QB];
        for (int r = 0; r < QB; r++) {
            pos[r] = i0 + (size_t)r < len ? i0 + (size_t)r : len - 1;
            q[r] = a->q + (t0 + pos[r]) * a->ld_q + off;
        }
        size_t nk = a->causal ? pos[QB - 1] + 1 : len;
        size_t nk16 = (nk + 15) & ~(size_t)15;
        scores_block(q, sc->kt, ldk, hd, nk16, a->scale, sc->s, ldk);
        if (a->rel_bias)
            add_rel_bias(a, head, pos, nk, sc->s, ldk);
        float inv[QB];
        for (int r = 0; r < QB; r++)
            inv[r] = softmax_scores(sc->s + (size_t)r * ldk, a->causal ? pos[r] + 1 : len, nk16);
        int rows = len - i0 < QB ? (int)(len - i0) : QB;
        for (int d0 = 0; d0 < hd; d0 += 16) {
            float *o[QB];
            for (int r = 0; r < QB; r++)
                o[r] =
                    a->out + (t0 + i0 + (size_t)(r < rows ? r : 0)) * a->ld_out + off + (size_t)d0;
            pv_block(sc->s, ldk, a->v + t0 * a->ld_v + off + (size_t)d0, a->ld_v, nk, d0 + 16 <= hd,
                     inv, o, rows);
        }
    }
}

static void attention_task(void *ctx, size_t task, int thread) {
    const ia_attention_args *a = ctx;
    size_t seq = task / (size_t)a->n_heads;
    int head = (int)(task % (size_t)a->n_heads);
    size_t len = (size_t)a->seq_start[seq + 1] - (size_t)a->seq_start[seq];
    size_t ldk = (len + 15) & ~(size_t)15;
    (void)thread;
    if (len == 0)
        return;
    if (a->head_dim % 8 != 0 || a->head_dim > HD_MAX || ldk > L_MAX ||
        (size_t)a->head_dim * ldk > KT_MAX) {
        cpu_attention_generic_task(a, seq, head);
        return;
    }
    /* 272 KiB of stack: pool threads and the caller have megabytes, and it
     * keeps the op free of allocation and of per-thread state. */
    attn_scratch sc;
    attention_head(a, seq, head, &sc);
}

void cpu_attention_avx2(const ia_attention_args *args, ia_threadpool *pool) {
    size_t tasks = args->n_seqs * (size_t)args->n_heads;
    if (tasks)
        ia_threadpool_run(pool, tasks, attention_task, (void *)args);
}
