/*
 * ops_generic: the portable ops of the CPU backend (everything but linear).
 *
 * These are the generic variant and also what the vector variants use for
 * ops that are not worth specialising (embedding gather, pooling: a handful
 * of rows per request) and for shapes their fast paths do not cover. They
 * favour plain, evidently-correct loops; where accuracy is at stake (layer
 * norm statistics, softmax sums) they accumulate in double.
 */
#include "kernels/cpu/cpu_internal.h"

#include <math.h>
#include <string.h>

float cpu_act_scalar(ia_activation act, float x) {
    switch (act) {
    case IA_ACT_NONE:
        return x;
    case IA_ACT_GELU_ERF:
        return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
    case IA_ACT_GELU_TANH: {
        float u = 0.7978845608028654f * (x + 0.044715f * x * x * x);
        return 0.5f * x * (1.0f + tanhf(u));
    }
    case IA_ACT_RELU:
        return x > 0.0f ? x : 0.0f;
    case IA_ACT_SILU:
        return x / (1.0f + expf(-x));
    }
    return x;
}

/* ---- layer norm ------------------------------------------------------------------- */

typedef struct norm_job {
    const float *x, *residual, *gamma, *beta;
    size_t ldx, ldr, ldo, cols, rows;
    float eps;
    float *out;
} norm_job;

#define NORM_ROWS_PER_TASK 16

static void norm_row(const norm_job *j, size_t r) {
    const float *x = j->x + r * j->ldx;
    float *o = j->out + r * j->ldo;
    const float *src = x;
    if (j->residual) {
        /* Stage x + residual in out: element-wise, so aliasing is safe. */
        const float *res = j->residual + r * j->ldr;
        for (size_t c = 0; c < j->cols; c++)
            o[c] = x[c] + res[c];
        src = o;
    }
    double sum = 0.0, sq = 0.0;
    for (size_t c = 0; c < j->cols; c++)
        sum += src[c];
    double mean = sum / (double)j->cols;
    for (size_t c = 0; c < j->cols; c++) {
        double d = src[c] - mean;
        sq += d * d;
    }
    double rstd = 1.0 / sqrt(sq / (double)j->cols + (double)j->eps);
    for (size_t c = 0; c < j->cols; c++)
        o[c] = (float)((src[c] - mean) * rstd) * j->gamma[c] + j->beta[c];
}

static void norm_task(void *ctx, size_t task, int thread) {
    const norm_job *j = ctx;
    size_t r0 = task * NORM_ROWS_PER_TASK;
    size_t r1 = r0 + NORM_ROWS_PER_TASK < j->rows ? r0 + NORM_ROWS_PER_TASK : j->rows;
    for (size_t r = r0; r < r1; r++)
        norm_row(j, r);
    (void)thread;
}

void cpu_layer_norm_generic(const float *x, size_t ldx, const float *residual, size_t ldr,
                            const float *gamma, const float *beta, float eps, size_t rows,
                            size_t cols, float *out, size_t ldo, ia_threadpool *pool) {
    norm_job j = {x, residual, gamma, beta, ldx, ldr, ldo, cols, rows, eps, out};
    size_t tasks = (rows + NORM_ROWS_PER_TASK - 1) / NORM_ROWS_PER_TASK;
    if (tasks)
        ia_threadpool_run(pool, tasks, norm_task, &j);
}

/* ---- attention ----------------------------------------------------------------------- */

static float dot(const float *a, const float *b, int n) {
    float s = 0.0f;
    for (int i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

/* The additive relative-position bias of query row i, key row j (both
 * within one sequence), or 0 when the op has none. */
static inline float rel_bias_at(const ia_attention_args *a, size_t i, size_t j, int head) {
    if (!a->rel_bias)
        return 0.0f;
    ptrdiff_t d = (ptrdiff_t)j - (ptrdiff_t)i + a->rel_bias_offset;
    return a->rel_bias[(size_t)d * (size_t)a->n_heads + (size_t)head];
}

/* One (sequence, head): per query two passes over the keys (max, then
 * exp-weighted sum straight into the output row), so no scratch is needed. */
void cpu_attention_generic_task(const ia_attention_args *a, size_t seq, int head) {
    size_t t0 = (size_t)a->seq_start[seq], t1 = (size_t)a->seq_start[seq + 1];
    size_t off = (size_t)head * (size_t)a->head_dim;
    int hd = a->head_dim;
    for (size_t i = t0; i < t1; i++) {
        const float *q = a->q + i * a->ld_q + off;
        float *o = a->out + i * a->ld_out + off;
        size_t end = a->causal ? i + 1 : t1;
        float mx = -INFINITY;
        for (size_t j = t0; j < end; j++) {
            float s = dot(q, a->k + j * a->ld_k + off, hd) * a->scale + rel_bias_at(a, i, j, head);
            mx = s > mx ? s : mx;
        }
        double sum = 0.0;
        float acc[hd > 0 ? hd : 1];
        memset(acc, 0, sizeof acc);
        for (size_t j = t0; j < end; j++) {
            float p = expf(dot(q, a->k + j * a->ld_k + off, hd) * a->scale +
                           rel_bias_at(a, i, j, head) - mx);
            const float *v = a->v + j * a->ld_v + off;
            for (int d = 0; d < hd; d++)
                acc[d] += p * v[d];
            sum += p;
        }
        float inv = sum > 0.0 ? (float)(1.0 / sum) : 0.0f;
        for (int d = 0; d < hd; d++)
            o[d] = acc[d] * inv;
    }
}

static void attention_task(void *ctx, size_t task, int thread) {
    const ia_attention_args *a = ctx;
    cpu_attention_generic_task(a, task / (size_t)a->n_heads, (int)(task % (size_t)a->n_heads));
    (void)thread;
}

void cpu_attention_generic(const ia_attention_args *args, ia_threadpool *pool) {
    size_t tasks = args->n_seqs * (size_t)args->n_heads;
    if (tasks)
        ia_threadpool_run(pool, tasks, attention_task, (void *)args);
}

/* ---- small ops ------------------------------------------------------------------------- */

void cpu_embedding_gather(const ia_tensor *table, const int32_t *ids, size_t n, bool accumulate,
                          float *out, size_t ldo) {
    size_t cols = (size_t)table->shape[table->ndim - 1];
    for (size_t i = 0; i < n; i++) {
        float *o = out + i * ldo;
        size_t base = (size_t)ids[i] * cols;
        for (size_t c = 0; c < cols; c++) {
            float v;
            switch (table->dtype) {
            case IA_DTYPE_F16:
                v = ia_f16_to_f32(((const uint16_t *)table->data)[base + c]);
                break;
            case IA_DTYPE_BF16:
                v = ia_bf16_to_f32(((const uint16_t *)table->data)[base + c]);
                break;
            default:
                v = ((const float *)table->data)[base + c];
                break;
            }
            o[c] = accumulate ? o[c] + v : v;
        }
    }
}

void cpu_pool_generic(ia_pooling mode, const float *x, size_t ldx, size_t cols,
                      const int32_t *seq_start, size_t n_seqs, float *out, size_t ldo) {
    for (size_t s = 0; s < n_seqs; s++) {
        size_t t0 = (size_t)seq_start[s], t1 = (size_t)seq_start[s + 1];
        float *o = out + s * ldo;
        if (t1 <= t0) {
            memset(o, 0, cols * sizeof *o);
            continue;
        }
        size_t len = t1 - t0;
        switch (mode) {
        case IA_POOL_CLS:
            memcpy(o, x + t0 * ldx, cols * sizeof *o);
            break;
        case IA_POOL_LAST:
            memcpy(o, x + (t1 - 1) * ldx, cols * sizeof *o);
            break;
        case IA_POOL_MAX:
            memcpy(o, x + t0 * ldx, cols * sizeof *o);
            for (size_t t = t0 + 1; t < t1; t++)
                for (size_t c = 0; c < cols; c++)
                    o[c] = x[t * ldx + c] > o[c] ? x[t * ldx + c] : o[c];
            break;
        case IA_POOL_MEAN:
        case IA_POOL_MEAN_SQRT_LEN: {
            double div = mode == IA_POOL_MEAN ? (double)len : sqrt((double)len);
            for (size_t c = 0; c < cols; c++) {
                double sum = 0.0;
                for (size_t t = t0; t < t1; t++)
                    sum += x[t * ldx + c];
                o[c] = (float)(sum / div);
            }
            break;
        }
        }
    }
}

void cpu_l2_normalize_generic(float *x, size_t ld, size_t rows, size_t cols) {
    for (size_t r = 0; r < rows; r++) {
        float *row = x + r * ld;
        double sq = 0.0;
        for (size_t c = 0; c < cols; c++)
            sq += (double)row[c] * row[c];
        if (sq == 0.0)
            continue;
        /* PyTorch's F.normalize divides by max(norm, 1e-12). */
        double norm = sqrt(sq);
        float inv = (float)(1.0 / (norm > 1e-12 ? norm : 1e-12));
        for (size_t c = 0; c < cols; c++)
            row[c] *= inv;
    }
}

void cpu_softmax_generic(float *x, size_t ld, size_t rows, size_t cols) {
    for (size_t r = 0; r < rows; r++) {
        float *row = x + r * ld;
        float mx = -INFINITY;
        for (size_t c = 0; c < cols; c++)
            mx = row[c] > mx ? row[c] : mx;
        double sum = 0.0;
        for (size_t c = 0; c < cols; c++) {
            row[c] = expf(row[c] - mx);
            sum += row[c];
        }
        float inv = (float)(1.0 / sum);
        for (size_t c = 0; c < cols; c++)
            row[c] *= inv;
    }
}

void cpu_activate_generic(ia_activation act, float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        x[i] = cpu_act_scalar(act, x[i]);
}
