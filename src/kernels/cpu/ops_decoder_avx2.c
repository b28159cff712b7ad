/*
 * ops_decoder_avx2: AVX2+FMA versions of the decoder ops (RMSNorm, RoPE,
 * SwiGLU, KV-cache attention); the AVX-512 variant uses them too.
 *
 * KV attention walks the cache in blocks of KV_BLOCK keys per query: the
 * block's scores go to a stack array (dot products of 8-wide vectors, f16
 * keys widened with vcvtph2ps), then the online softmax takes the block's
 * maximum at once, rescales the accumulator only when the maximum grew, and
 * exponentiates the block with the vector exp before adding the weighted V
 * rows into a head_dim accumulator kept in registers' worth of stack. That
 * is the decode path (one query per task). A prefill task of 4 or more
 * queries (head_dim up to 128) goes through kv_block instead, which widens
 * each block of keys and values once for all of its queries (see there).
 * Heads whose head_dim is not a multiple of 8 use the generic code.
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

/* ---- blocked prefill: a block of queries against blocks of keys ---------------------- */

/* Prefill asks many consecutive queries of one head for the same keys, so
 * each block of KVB_KEYS keys and values is widened to f32 once into
 * row-major scratch and then shared by the block's CPU_KV_QBLOCK queries.
 * A query's scores for 8 keys come from 8 accumulators over the head
 * dimension, folded into one vector by a horizontal-add tree (no per-key
 * horizontal sum); the values are accumulated 64 dimensions at a time in
 * registers. The softmax is the online one of kv_query, per query, once per
 * key block; keys outside a query's causal (and window) range are skipped. */
#define KVB_KEYS 64
#define KVB_HD_MAX 128

typedef struct kv_block_scratch {
    _Alignas(32) float kf[KVB_KEYS * KVB_HD_MAX];
    _Alignas(32) float vf[KVB_KEYS * KVB_HD_MAX];
    _Alignas(32) float acc[CPU_KV_QBLOCK * KVB_HD_MAX];
    _Alignas(32) float s[KVB_KEYS];
    float mx[CPU_KV_QBLOCK], sum[CPU_KV_QBLOCK];
} kv_block_scratch;

/* s[0..8) = scale * (q . kf row k) for the 8 rows at kf (hd apart). */
static inline void kvb_scores8(const float *q, const float *kf, int hd, float scale, float *s) {
    __m256 t0 = _mm256_setzero_ps(), t1 = t0, t2 = t0, t3 = t0, t4 = t0, t5 = t0, t6 = t0, t7 = t0;
    for (int d = 0; d < hd; d += 8) {
        __m256 qv = _mm256_loadu_ps(q + d);
        const float *k = kf + d;
        t0 = _mm256_fmadd_ps(qv, _mm256_load_ps(k), t0);
        t1 = _mm256_fmadd_ps(qv, _mm256_load_ps(k + hd), t1);
        t2 = _mm256_fmadd_ps(qv, _mm256_load_ps(k + 2 * hd), t2);
        t3 = _mm256_fmadd_ps(qv, _mm256_load_ps(k + 3 * hd), t3);
        t4 = _mm256_fmadd_ps(qv, _mm256_load_ps(k + 4 * hd), t4);
        t5 = _mm256_fmadd_ps(qv, _mm256_load_ps(k + 5 * hd), t5);
        t6 = _mm256_fmadd_ps(qv, _mm256_load_ps(k + 6 * hd), t6);
        t7 = _mm256_fmadd_ps(qv, _mm256_load_ps(k + 7 * hd), t7);
    }
    /* hadd pairs, then quads: b0 = [t0..t3 over lanes 0-3 | t0..t3 over 4-7] */
    __m256 b0 = _mm256_hadd_ps(_mm256_hadd_ps(t0, t1), _mm256_hadd_ps(t2, t3));
    __m256 b1 = _mm256_hadd_ps(_mm256_hadd_ps(t4, t5), _mm256_hadd_ps(t6, t7));
    __m256 sum =
        _mm256_add_ps(_mm256_permute2f128_ps(b0, b1, 0x20), _mm256_permute2f128_ps(b0, b1, 0x31));
    _mm256_store_ps(s, _mm256_mul_ps(sum, _mm256_set1_ps(scale)));
}

/* acc[0..hd) += sum over j in [lo, hi) of p[j] * vf row j. */
static inline void kvb_accumulate(float *acc, const float *p, const float *vf, int hd, size_t lo,
                                  size_t hi) {
    int d0 = 0;
    for (; d0 + 64 <= hd; d0 += 64) {
        float *a = acc + d0;
        __m256 a0 = _mm256_load_ps(a), a1 = _mm256_load_ps(a + 8), a2 = _mm256_load_ps(a + 16),
               a3 = _mm256_load_ps(a + 24), a4 = _mm256_load_ps(a + 32),
               a5 = _mm256_load_ps(a + 40), a6 = _mm256_load_ps(a + 48),
               a7 = _mm256_load_ps(a + 56);
        for (size_t j = lo; j < hi; j++) {
            __m256 w = _mm256_broadcast_ss(p + j);
            const float *v = vf + j * (size_t)hd + d0;
            a0 = _mm256_fmadd_ps(w, _mm256_load_ps(v), a0);
            a1 = _mm256_fmadd_ps(w, _mm256_load_ps(v + 8), a1);
            a2 = _mm256_fmadd_ps(w, _mm256_load_ps(v + 16), a2);
            a3 = _mm256_fmadd_ps(w, _mm256_load_ps(v + 24), a3);
            a4 = _mm256_fmadd_ps(w, _mm256_load_ps(v + 32), a4);
            a5 = _mm256_fmadd_ps(w, _mm256_load_ps(v + 40), a5);
            a6 = _mm256_fmadd_ps(w, _mm256_load_ps(v + 48), a6);
            a7 = _mm256_fmadd_ps(w, _mm256_load_ps(v + 56), a7);
        }
        _mm256_store_ps(a, a0);
        _mm256_store_ps(a + 8, a1);
        _mm256_store_ps(a + 16, a2);
        _mm256_store_ps(a + 24, a3);
        _mm256_store_ps(a + 32, a4);
        _mm256_store_ps(a + 40, a5);
        _mm256_store_ps(a + 48, a6);
        _mm256_store_ps(a + 56, a7);
    }
    for (; d0 < hd; d0 += 8) {
        __m256 a0 = _mm256_load_ps(acc + d0);
        for (size_t j = lo; j < hi; j++)
            a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(p + j),
                                 _mm256_load_ps(vf + j * (size_t)hd + d0), a0);
        _mm256_store_ps(acc + d0, a0);
    }
}

/* Widens rows [j0, j0 + nb) of one kv head of the cache into dst (hd apart)
 * and zeroes the rows up to the next multiple of 8. */
static void kvb_widen(const ia_kv_attention_args *a, const void *cache, size_t hoff, size_t j0,
                      size_t nb, float *dst) {
    int hd = a->head_dim;
    for (size_t j = 0; j < nb; j++) {
        size_t off = (j0 + j) * a->ld_kv + hoff;
        for (int d = 0; d < hd; d += 8)
            _mm256_store_ps(dst + j * (size_t)hd + d, load8(cache, a->kv_dtype, off + (size_t)d));
    }
    for (size_t j = nb; j % 8; j++)
        memset(dst + j * (size_t)hd, 0, (size_t)hd * sizeof(float));
}

/* Queries [i0, i1) (at most CPU_KV_QBLOCK) of one head. */
static void kv_block(const ia_kv_attention_args *a, int head, size_t i0, size_t i1,
                     kv_block_scratch *sc) {
    int hd = a->head_dim, kvh = head / (a->n_heads / a->n_kv_heads);
    size_t hoff = (size_t)kvh * (size_t)hd, nq = i1 - i0;
    size_t first = cpu_kv_first_key(a, a->pos0 + i0), last = a->pos0 + i1 - 1;
    memset(sc->acc, 0, nq * (size_t)hd * sizeof(float));
    for (size_t r = 0; r < nq; r++) {
        sc->mx[r] = -INFINITY;
        sc->sum[r] = 0.0f;
    }
    for (size_t j0 = first & ~(size_t)7; j0 <= last; j0 += KVB_KEYS) {
        size_t nb = last + 1 - j0 < KVB_KEYS ? last + 1 - j0 : KVB_KEYS;
        kvb_widen(a, a->k, hoff, j0, nb, sc->kf);
        kvb_widen(a, a->v, hoff, j0, nb, sc->vf);
        for (size_t r = 0; r < nq; r++) {
            size_t p = a->pos0 + i0 + r, f = cpu_kv_first_key(a, p);
            /* this query's keys in the block, relative to j0 */
            size_t lo = f > j0 ? f - j0 : 0, hi = p + 1 - j0 < nb ? p + 1 - j0 : nb;
            if (f >= j0 + nb || lo >= hi)
                continue;
            const float *q = a->q + (i0 + r) * a->ld_q + (size_t)head * (size_t)hd;
            float *s = sc->s, bmx = -INFINITY;
            for (size_t g = lo & ~(size_t)7; g < hi; g += 8)
                kvb_scores8(q, sc->kf + g * (size_t)hd, hd, a->scale, s + g);
            for (size_t j = lo; j < hi; j++)
                bmx = s[j] > bmx ? s[j] : bmx;
            float *acc = sc->acc + r * (size_t)hd;
            if (bmx > sc->mx[r]) {
                float c = expf(sc->mx[r] - bmx);
                __m256 vc = _mm256_set1_ps(c);
                for (int d = 0; d < hd; d += 8)
                    _mm256_store_ps(acc + d, _mm256_mul_ps(_mm256_load_ps(acc + d), vc));
                sc->sum[r] *= c;
                sc->mx[r] = bmx;
            }
            __m256 vm = _mm256_set1_ps(sc->mx[r]), vsum = _mm256_setzero_ps();
            size_t j = lo;
            for (; j + 8 <= hi; j += 8) {
                __m256 e = v_exp(_mm256_sub_ps(_mm256_loadu_ps(s + j), vm));
                _mm256_storeu_ps(s + j, e);
                vsum = _mm256_add_ps(vsum, e);
            }
            float sum = v_hsum(vsum);
            for (; j < hi; j++) {
                s[j] = expf(s[j] - sc->mx[r]);
                sum += s[j];
            }
            sc->sum[r] += sum;
            kvb_accumulate(acc, s, sc->vf, hd, lo, hi);
        }
    }
    for (size_t r = 0; r < nq; r++) {
        __m256 inv = _mm256_set1_ps(1.0f / sc->sum[r]);
        const float *acc = sc->acc + r * (size_t)hd;
        float *o = a->out + (i0 + r) * a->ld_out + (size_t)head * (size_t)hd;
        for (int d = 0; d < hd; d += 8)
            _mm256_storeu_ps(o + d, _mm256_mul_ps(_mm256_load_ps(acc + d), inv));
    }
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
    if (i1 - i0 >= 4 && a->head_dim <= KVB_HD_MAX) {
        /* 80 KiB of stack, as attention_task in ops_avx2.c: no allocation. */
        kv_block_scratch sc;
        kv_block(a, head, i0, i1, &sc);
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
