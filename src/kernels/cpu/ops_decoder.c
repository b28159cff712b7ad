/*
 * ops_decoder: the portable decoder ops of the CPU backend - RMSNorm (with
 * the pre-norm residual add), rotary position embedding in both pairings,
 * SwiGLU, and causal attention of new queries against a KV cache.
 *
 * Like ops_generic.c these are the generic variant and the reference that
 * the AVX2 versions (ops_decoder_avx2.c) are tested against and fall back
 * to. The KV attention is one pass per query with an online softmax (running
 * maximum, rescaled sum and accumulator), so it needs no scratch that grows
 * with the context: a decode step against a long cache allocates nothing.
 */
#include "kernels/cpu/cpu_internal.h"

#include <math.h>
#include <string.h>

/* A Q8_0 KV cache row: blocks of 32 values, each an f16 scale and 32 int8. */
#define KV_Q8_BLOCK 32
#define KV_Q8_BYTES 34

/* ---- RMSNorm ------------------------------------------------------------------------ */

typedef struct rms_job {
    const float *x, *gamma;
    float *residual, *out;
    size_t ldx, ldr, ldo, cols, rows;
    float eps;
} rms_job;

#define RMS_ROWS_PER_TASK 16

static void rms_task(void *ctx, size_t task, int thread) {
    const rms_job *j = ctx;
    size_t r1 = (task + 1) * RMS_ROWS_PER_TASK < j->rows ? (task + 1) * RMS_ROWS_PER_TASK : j->rows;
    for (size_t r = task * RMS_ROWS_PER_TASK; r < r1; r++) {
        const float *src = j->x + r * j->ldx;
        if (j->residual) {
            float *res = j->residual + r * j->ldr;
            for (size_t c = 0; c < j->cols; c++)
                res[c] += src[c];
            src = res;
        }
        double sq = 0.0;
        for (size_t c = 0; c < j->cols; c++)
            sq += (double)src[c] * src[c];
        float inv = (float)(1.0 / sqrt(sq / (double)j->cols + (double)j->eps));
        float *o = j->out + r * j->ldo;
        for (size_t c = 0; c < j->cols; c++)
            o[c] = src[c] * inv * j->gamma[c];
    }
    (void)thread;
}

void cpu_rms_norm_generic(const float *x, size_t ldx, float *residual, size_t ldr,
                          const float *gamma, float eps, size_t rows, size_t cols, float *out,
                          size_t ldo, ia_threadpool *pool) {
    rms_job j = {x, gamma, residual, out, ldx, ldr, ldo, cols, rows, eps};
    size_t tasks = (rows + RMS_ROWS_PER_TASK - 1) / RMS_ROWS_PER_TASK;
    if (tasks && cols)
        ia_threadpool_run(pool, tasks, rms_task, &j);
}

/* ---- RoPE --------------------------------------------------------------------------- */

/* cos and sin of every pair's angle at `pos`, as HF computes them: the angle
 * is a float product, then cos and sin of that float. */
void cpu_rope_angles(size_t pos, const float *inv_freq, int half, float *cs, float *sn) {
    for (int i = 0; i < half; i++) {
        float a = (float)pos * inv_freq[i];
        cs[i] = cosf(a);
        sn[i] = sinf(a);
    }
}

void cpu_rope_generic(float *x, size_t ld, size_t rows, int n_heads, int head_dim, size_t pos0,
                      const float *inv_freq, ia_rope_mode mode) {
    int half = head_dim / 2;
    float cs[IA_MAX_HEAD_DIM / 2], sn[IA_MAX_HEAD_DIM / 2];
    /* NEOX pairs x[i] with x[i + half]; ADJACENT pairs x[2i] with x[2i + 1]. */
    size_t stride = mode == IA_ROPE_NEOX ? 1 : 2, other = mode == IA_ROPE_NEOX ? (size_t)half : 1;
    for (size_t r = 0; r < rows; r++) {
        cpu_rope_angles(pos0 + r, inv_freq, half, cs, sn);
        for (int h = 0; h < n_heads; h++) {
            float *v = x + r * ld + (size_t)h * (size_t)head_dim;
            for (int i = 0; i < half; i++) {
                float *a = v + (size_t)i * stride, *b = a + other;
                float x0 = *a, x1 = *b;
                *a = x0 * cs[i] - x1 * sn[i];
                *b = x1 * cs[i] + x0 * sn[i];
            }
        }
    }
}

/* ---- SwiGLU -------------------------------------------------------------------------- */

void cpu_swiglu_generic(const float *gate, size_t ldg, const float *up, size_t ldu, size_t rows,
                        size_t cols, float *out, size_t ldo) {
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols; c++) {
            float g = gate[r * ldg + c];
            out[r * ldo + c] = g / (1.0f + expf(-g)) * up[r * ldu + c];
        }
}

/* ---- attention against a KV cache ------------------------------------------------------ */

/* Cache row j of kv head `kvh` as f32 (a pointer into the cache when it is
 * f32, else converted into buf). A Q8_0 cache holds each row as blocks of
 * 32 values (an f16 scale, 32 int8), heads being whole blocks. */
static const float *kv_row(const ia_kv_attention_args *a, const void *base, size_t j, int kvh,
                           float *buf) {
    size_t off = j * a->ld_kv + (size_t)kvh * (size_t)a->head_dim;
    if (a->kv_dtype == IA_DTYPE_F32)
        return (const float *)base + off;
    if (a->kv_dtype == IA_DTYPE_Q8_0) {
        const uint8_t *blk = (const uint8_t *)base + off / KV_Q8_BLOCK * KV_Q8_BYTES;
        for (int b = 0; b < a->head_dim / KV_Q8_BLOCK; b++, blk += KV_Q8_BYTES) {
            float d = ia_f16_to_f32((uint16_t)(blk[0] | blk[1] << 8));
            for (int i = 0; i < KV_Q8_BLOCK; i++)
                buf[b * KV_Q8_BLOCK + i] = d * (float)(int8_t)blk[2 + i];
        }
        return buf;
    }
    const uint16_t *h = (const uint16_t *)base + off;
    for (int d = 0; d < a->head_dim; d++)
        buf[d] = ia_f16_to_f32(h[d]);
    return buf;
}

/* The first cache row query position p may see. */
size_t cpu_kv_first_key(const ia_kv_attention_args *a, size_t p) {
    return a->window && p + 1 > a->window ? p + 1 - a->window : 0;
}

void cpu_kv_attention_generic_rows(const ia_kv_attention_args *a, int head, size_t i0, size_t i1) {
    int hd = a->head_dim, kvh = head / (a->n_heads / a->n_kv_heads);
    float kbuf[IA_MAX_HEAD_DIM], vbuf[IA_MAX_HEAD_DIM], acc[IA_MAX_HEAD_DIM];
    for (size_t i = i0; i < i1; i++) {
        const float *q = a->q + i * a->ld_q + (size_t)head * (size_t)hd;
        size_t p = a->pos0 + i;
        float mx = -INFINITY;
        double sum = 0.0;
        memset(acc, 0, (size_t)hd * sizeof *acc);
        for (size_t j = cpu_kv_first_key(a, p); j <= p; j++) {
            const float *k = kv_row(a, a->k, j, kvh, kbuf);
            float s = 0.0f;
            for (int d = 0; d < hd; d++)
                s += q[d] * k[d];
            s *= a->scale;
            if (s > mx) {
                /* a new maximum: rescale what has been summed so far */
                float c = expf(mx - s);
                sum *= c;
                for (int d = 0; d < hd; d++)
                    acc[d] *= c;
                mx = s;
            }
            float w = expf(s - mx);
            const float *v = kv_row(a, a->v, j, kvh, vbuf);
            for (int d = 0; d < hd; d++)
                acc[d] += w * v[d];
            sum += w;
        }
        float inv = (float)(1.0 / sum);
        float *o = a->out + i * a->ld_out + (size_t)head * (size_t)hd;
        for (int d = 0; d < hd; d++)
            o[d] = acc[d] * inv;
    }
}

/* Tasks are (head, block of KV_QBLOCK queries): a decode step has one task
 * per head, a prefill enough to keep every thread busy. */
static void kv_task(void *ctx, size_t task, int thread) {
    const ia_kv_attention_args *a = ctx;
    size_t blocks = (a->n_q + CPU_KV_QBLOCK - 1) / CPU_KV_QBLOCK;
    int head = (int)(task / blocks);
    size_t i0 = task % blocks * CPU_KV_QBLOCK;
    size_t i1 = i0 + CPU_KV_QBLOCK < a->n_q ? i0 + CPU_KV_QBLOCK : a->n_q;
    cpu_kv_attention_generic_rows(a, head, i0, i1);
    (void)thread;
}

void cpu_kv_attention_generic(const ia_kv_attention_args *a, ia_threadpool *pool) {
    size_t blocks = (a->n_q + CPU_KV_QBLOCK - 1) / CPU_KV_QBLOCK;
    if (blocks && a->n_heads > 0)
        ia_threadpool_run(pool, blocks * (size_t)a->n_heads, kv_task, (void *)a);
}
