/*
 * ops_decoder_avx2: AVX2+FMA versions of the decoder ops (RMSNorm, RoPE,
 * SwiGLU, KV-cache attention); the AVX-512 variant uses them too.
 *
 * KV attention walks the cache in blocks of KV_BLOCK keys per query: the
 * block's scores go to a stack array (dot products of 8-wide vectors, f16
 * keys widened with vcvtph2ps), then the online softmax takes the block's
 * maximum at once, rescales the accumulator only when the maximum grew, and
 * exponentiates the block with the vector exp before adding the weighted V
 * rows into a head_dim accumulator kept in registers' worth of stack. Heads
 * whose head_dim is not a multiple of 8 use the generic code.
 */
#include "kernels/cpu/cpu_internal.h"
#include "kernels/cpu/simd_avx2.h"

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

static void rms_row(const rms_job *j, size_t r) {
    const float *src = j->x + r * j->ldx;
    size_t n = j->cols, n8 = n & ~(size_t)7, c;
    __m256i tail = v_tail_mask(n - n8);
    if (j->residual) {
        float *res = j->residual + r * j->ldr;
        for (c = 0; c < n8; c += 8)
            _mm256_storeu_ps(res + c,
                             _mm256_add_ps(_mm256_loadu_ps(res + c), _mm256_loadu_ps(src + c)));
        if (c < n)
            _mm256_maskstore_ps(res + c, tail,
                                _mm256_add_ps(_mm256_maskload_ps(res + c, tail),
                                              _mm256_maskload_ps(src + c, tail)));
        src = res;
    }
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    for (c = 0; c + 16 <= n8; c += 16) {
        __m256 a = _mm256_loadu_ps(src + c), b = _mm256_loadu_ps(src + c + 8);
        s0 = _mm256_fmadd_ps(a, a, s0);
        s1 = _mm256_fmadd_ps(b, b, s1);
    }
    for (; c < n8; c += 8) {
        __m256 a = _mm256_loadu_ps(src + c);
        s0 = _mm256_fmadd_ps(a, a, s0);
    }
    if (c < n) {
        __m256 a = _mm256_maskload_ps(src + c, tail);
        s1 = _mm256_fmadd_ps(a, a, s1);
    }
    double ms = (double)v_hsum(_mm256_add_ps(s0, s1)) / (double)n;
    __m256 inv = _mm256_set1_ps((float)(1.0 / sqrt(ms + (double)j->eps)));
    float *o = j->out + r * j->ldo;
    for (c = 0; c < n8; c += 8)
        _mm256_storeu_ps(o + c, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(src + c), inv),
                                              _mm256_loadu_ps(j->gamma + c)));
    if (c < n)
        _mm256_maskstore_ps(o + c, tail,
                            _mm256_mul_ps(_mm256_mul_ps(_mm256_maskload_ps(src + c, tail), inv),
                                          _mm256_maskload_ps(j->gamma + c, tail)));
}

static void rms_task(void *ctx, size_t task, int thread) {
    const rms_job *j = ctx;
    size_t r1 = (task + 1) * RMS_ROWS_PER_TASK < j->rows ? (task + 1) * RMS_ROWS_PER_TASK : j->rows;
    for (size_t r = task * RMS_ROWS_PER_TASK; r < r1; r++)
        rms_row(j, r);
    (void)thread;
}

void cpu_rms_norm_avx2(const float *x, size_t ldx, float *residual, size_t ldr, const float *gamma,
                       float eps, size_t rows, size_t cols, float *out, size_t ldo,
                       ia_threadpool *pool) {
    rms_job j = {x, gamma, residual, out, ldx, ldr, ldo, cols, rows, eps};
    size_t tasks = (rows + RMS_ROWS_PER_TASK - 1) / RMS_ROWS_PER_TASK;
    if (tasks && cols)
        ia_threadpool_run(pool, tasks, rms_task, &j);
}

/* ---- RoPE --------------------------------------------------------------------------- */

/* The NEOX pairing has both halves contiguous, so 8 pairs rotate per step;
 * the adjacent pairing and heads whose half is not a multiple of 8 take the
 * generic loop (its cost is the cos/sin per row, shared across heads). */
void cpu_rope_avx2(float *x, size_t ld, size_t rows, int n_heads, int head_dim, size_t pos0,
                   const float *inv_freq, ia_rope_mode mode) {
    int half = head_dim / 2;
    if (mode != IA_ROPE_NEOX || half % 8 != 0) {
        cpu_rope_generic(x, ld, rows, n_heads, head_dim, pos0, inv_freq, mode);
        return;
    }
    _Alignas(32) float cs[IA_MAX_HEAD_DIM / 2], sn[IA_MAX_HEAD_DIM / 2];
    for (size_t r = 0; r < rows; r++) {
        cpu_rope_angles(pos0 + r, inv_freq, half, cs, sn);
        for (int h = 0; h < n_heads; h++) {
            float *a = x + r * ld + (size_t)h * (size_t)head_dim, *b = a + half;
            for (int i = 0; i < half; i += 8) {
                __m256 x0 = _mm256_loadu_ps(a + i), x1 = _mm256_loadu_ps(b + i);
                __m256 c = _mm256_load_ps(cs + i), s = _mm256_load_ps(sn + i);
                _mm256_storeu_ps(a + i, _mm256_fmsub_ps(x0, c, _mm256_mul_ps(x1, s)));
                _mm256_storeu_ps(b + i, _mm256_fmadd_ps(x1, c, _mm256_mul_ps(x0, s)));
            }
        }
    }
}

/* ---- SwiGLU -------------------------------------------------------------------------- */

void cpu_swiglu_avx2(const float *gate, size_t ldg, const float *up, size_t ldu, size_t rows,
                     size_t cols, float *out, size_t ldo) {
    size_t n8 = cols & ~(size_t)7;
    __m256i tail = v_tail_mask(cols - n8);
    for (size_t r = 0; r < rows; r++) {
        const float *g = gate + r * ldg, *u = up + r * ldu;
        float *o = out + r * ldo;
        size_t c;
        for (c = 0; c < n8; c += 8)
            _mm256_storeu_ps(o + c,
                             _mm256_mul_ps(v_silu(_mm256_loadu_ps(g + c)), _mm256_loadu_ps(u + c)));
        if (c < cols)
            _mm256_maskstore_ps(o + c, tail,
                                _mm256_mul_ps(v_silu(_mm256_maskload_ps(g + c, tail)),
                                              _mm256_maskload_ps(u + c, tail)));
    }
}

/* ---- attention against a KV cache ------------------------------------------------------ */

#define KV_BLOCK 64

/* Eight cache values from element offset off (a multiple of 8). */
static inline __m256 load8(const void *base, ia_dtype dt, size_t off) {
    if (dt == IA_DTYPE_F32)
        return _mm256_loadu_ps((const float *)base + off);
    if (dt == IA_DTYPE_Q8_0) {
        const uint8_t *blk = (const uint8_t *)base + off / KV_Q8_BLOCK * KV_Q8_BYTES;
        uint16_t h;
        memcpy(&h, blk, 2);
        __m256 d = _mm256_cvtph_ps(_mm_set1_epi16((short)h));
        int64_t q8;
        memcpy(&q8, blk + 2 + off % KV_Q8_BLOCK, 8);
        __m256i q = _mm256_cvtepi8_epi32(_mm_cvtsi64_si128(q8));
        return _mm256_mul_ps(d, _mm256_cvtepi32_ps(q));
    }
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)base + off)));
}

static void kv_query(const ia_kv_attention_args *a, int head, size_t i) {
    int hd = a->head_dim, nv = hd / 8, kvh = head / (a->n_heads / a->n_kv_heads);
    size_t hoff = (size_t)kvh * (size_t)hd;
    __m256 q[IA_MAX_HEAD_DIM / 8], acc[IA_MAX_HEAD_DIM / 8];
    const float *qr = a->q + i * a->ld_q + (size_t)head * (size_t)hd;
    for (int d = 0; d < nv; d++) {
        q[d] = _mm256_loadu_ps(qr + 8 * d);
        acc[d] = _mm256_setzero_ps();
    }
    _Alignas(32) float s[KV_BLOCK];
    size_t p = a->pos0 + i;
    float mx = -INFINITY, sum = 0.0f;
    for (size_t j0 = cpu_kv_first_key(a, p); j0 <= p; j0 += KV_BLOCK) {
        size_t nb = p + 1 - j0 < KV_BLOCK ? p + 1 - j0 : KV_BLOCK;
        float bmx = -INFINITY;
        for (size_t j = 0; j < nb; j++) {
            size_t off = (j0 + j) * a->ld_kv + hoff;
            __m256 t = _mm256_mul_ps(q[0], load8(a->k, a->kv_dtype, off));
            for (int d = 1; d < nv; d++)
                t = _mm256_fmadd_ps(q[d], load8(a->k, a->kv_dtype, off + 8 * (size_t)d), t);
            s[j] = v_hsum(t) * a->scale;
            bmx = s[j] > bmx ? s[j] : bmx;
        }
        if (bmx > mx) {
            /* the maximum grew: rescale the sum and accumulator once per block */
            float c = expf(mx - bmx);
            __m256 vc = _mm256_set1_ps(c);
            for (int d = 0; d < nv; d++)
                acc[d] = _mm256_mul_ps(acc[d], vc);
            sum *= c;
            mx = bmx;
        }
        __m256 vm = _mm256_set1_ps(mx), vsum = _mm256_setzero_ps();
        size_t j;
        for (j = 0; j + 8 <= nb; j += 8) {
            __m256 e = v_exp(_mm256_sub_ps(_mm256_load_ps(s + j), vm));
            _mm256_store_ps(s + j, e);
            vsum = _mm256_add_ps(vsum, e);
        }
        sum += v_hsum(vsum);
        for (; j < nb; j++) {
            s[j] = expf(s[j] - mx);
            sum += s[j];
        }
        for (j = 0; j < nb; j++) {
            size_t off = (j0 + j) * a->ld_kv + hoff;
            __m256 w = _mm256_set1_ps(s[j]);
            for (int d = 0; d < nv; d++)
                acc[d] = _mm256_fmadd_ps(w, load8(a->v, a->kv_dtype, off + 8 * (size_t)d), acc[d]);
        }
    }
    __m256 inv = _mm256_set1_ps(1.0f / sum);
    float *o = a->out + i * a->ld_out + (size_t)head * (size_t)hd;
    for (int d = 0; d < nv; d++)
        _mm256_storeu_ps(o + 8 * d, _mm256_mul_ps(acc[d], inv));
}

static void kv_task(void *ctx, size_t task, int thread) {
    const ia_kv_attention_args *a = ctx;
    size_t blocks = (a->n_q + CPU_KV_QBLOCK - 1) / CPU_KV_QBLOCK;
    int head = (int)(task / blocks);
    size_t i0 = task % blocks * CPU_KV_QBLOCK;
    size_t i1 = i0 + CPU_KV_QBLOCK < a->n_q ? i0 + CPU_KV_QBLOCK : a->n_q;
    (void)thread;
    if (a->head_dim % 8 != 0) {
        cpu_kv_attention_generic_rows(a, head, i0, i1);
        return;
    }
    for (size_t i = i0; i < i1; i++)
        kv_query(a, head, i);
}

void cpu_kv_attention_avx2(const ia_kv_attention_args *a, ia_threadpool *pool) {
    size_t blocks = (a->n_q + CPU_KV_QBLOCK - 1) / CPU_KV_QBLOCK;
    if (blocks && a->n_heads > 0)
        ia_threadpool_run(pool, blocks * (size_t)a->n_heads, kv_task, (void *)a);
}
