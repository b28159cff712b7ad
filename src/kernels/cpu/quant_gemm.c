/*
 * quant_gemm: linear on Q8_0 weights for every m - the interleaved packing,
 * the portable tile kernel (the generic variant, and the definition the
 * vector tiles of quant_dot_simd.h match bit for bit), and the threaded
 * driver.
 *
 * The row-at-a-time dot products of quant_dot.c decode each weight block
 * once per activation row; at prefill and embedding batch sizes that makes
 * int8 slower than f32. Here weights are interleaved at load in groups of 8
 * output rows (cpu_internal.h has the layout) so that one vector holds 8
 * outputs' levels and a tile of up to CPU_Q8_0_MR activation rows x 16
 * outputs reuses every weight load and every activation broadcast.
 *
 * What an output is does not depend on m, on the tile or on the thread
 * split: its sum runs over the blocks in order with one fused multiply-add
 * per block (see cpu_internal.h), bias and activation are applied per
 * 16-column tile at columns fixed by the weight's shape, and the activation
 * rows are quantised the same way whether they come alone or in a batch. So
 * a server that batches requests returns each the bits it would get alone;
 * tests/kernels/test_quant_kernels.c checks it.
 */
#include "kernels/cpu/cpu_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ia/quant.h"

#define Q8_BLOCK 34     /* bytes of one ggml Q8_0 block */
#define ROWS_PER 32     /* activation rows per task for large m */
#define COLS_PER 64     /* output columns per task for large m (a multiple of 16) */
#define QUANT_CHUNK 64  /* blocks quantised at a time into the stack */
#define STACK_ACT 16384 /* bytes of quantised activations kept on the stack */

/* ---- packing ------------------------------------------------------------------------- */

size_t cpu_q8_0_packed_bytes(size_t n, size_t k) {
    size_t groups = (n + 15) / 16 * 2;
    return groups * (k / 32) * CPU_Q8X8_BYTES;
}

void cpu_q8_0_interleave(const uint8_t *rows, size_t n, size_t k, uint8_t *dst) {
    size_t nb = k / 32;
    memset(dst, 0, cpu_q8_0_packed_bytes(n, k));
    for (size_t r = 0; r < n; r++) {
        size_t g = r / 8, c = r % 8;
        for (size_t b = 0; b < nb; b++) {
            const uint8_t *src = rows + (r * nb + b) * Q8_BLOCK;
            uint8_t *blk = dst + (g * nb + b) * CPU_Q8X8_BYTES;
            memcpy(blk + 2 * c, src, 2);
            for (int p = 0; p < 16; p++)
                memcpy(blk + 16 + 16 * p + 2 * c, src + 2 + 2 * p, 2);
        }
    }
}

/* ---- the portable tile ------------------------------------------------------------- */

void cpu_q8_0_tile_generic(const cpu_q8_0_tile *t) {
    float acc[CPU_Q8_0_MR][16] = {{0}};
    for (size_t b = 0; b < t->nb; b++)
        for (int g = 0; g < 2; g++) {
            const uint8_t *blk = t->w + (g * t->nb + b) * CPU_Q8X8_BYTES;
            for (int c = 0; c < 8; c++) {
                float dw = ia_f16_to_f32((uint16_t)(blk[2 * c] | (blk[2 * c + 1] << 8)));
                for (int r = 0; r < t->mr; r++) {
                    const int16_t *a = t->a + (size_t)r * t->lda + b * 32;
                    int32_t isum = 0;
                    for (int p = 0; p < 16; p++)
                        isum += (int8_t)blk[16 + 16 * p + 2 * c] * a[2 * p] +
                                (int8_t)blk[16 + 16 * p + 2 * c + 1] * a[2 * p + 1];
                    float da = t->ad[(size_t)r * t->ldd + b];
                    acc[r][8 * g + c] = fmaf(dw * da, (float)isum, acc[r][8 * g + c]);
                }
            }
        }
    for (int r = 0; r < t->mr; r++)
        for (int j = 0; j < 16; j++) {
            float v = t->bias ? acc[r][j] + t->bias[j] : acc[r][j];
            t->out[(size_t)r * t->ldo + (size_t)j] = cpu_act_scalar(t->act, v);
        }
}

/* ---- the driver ------------------------------------------------------------------------ */

typedef struct q8_job {
    void (*tile)(const cpu_q8_0_tile *t);
    void (*quantize)(const float *x, cpu_qa32 *dst, size_t k);
    void (*quantize_i16)(const float *x, int16_t *q, float *d, size_t k);
    const ia_packed_weight *w;
    const float *bias;
    ia_activation act;
    const float *x;
    size_t ldx;
    float *y;
    size_t ldy;
    size_t m, nb;
    int16_t *a; /* m rows of nb * 32 levels */
    float *ad;  /* m rows of nb scales */
    size_t rows_per, cols_per, n_col_tasks;
    bool prefetch;
} q8_job;

/* Rows 16 task .. +15 of x quantised (the variant's qa32 quantiser) and
 * widened to int16. */
static void q8_quantize_task(void *ctx, size_t task, int thread) {
    const q8_job *job = ctx;
    cpu_qa32 buf[QUANT_CHUNK];
    size_t i1 = 16 * task + 16 < job->m ? 16 * task + 16 : job->m;
    for (size_t i = 16 * task; i < i1; i++) {
        int16_t *a = job->a + i * job->nb * 32;
        float *ad = job->ad + i * job->nb;
        if (job->quantize_i16) {
            job->quantize_i16(job->x + i * job->ldx, a, ad, job->w->k);
            continue;
        }
        for (size_t b0 = 0; b0 < job->nb; b0 += QUANT_CHUNK) {
            size_t cnt = job->nb - b0 < QUANT_CHUNK ? job->nb - b0 : QUANT_CHUNK;
            job->quantize(job->x + i * job->ldx + 32 * b0, buf, 32 * cnt);
            for (size_t b = 0; b < cnt; b++) {
                ad[b0 + b] = buf[b].d;
                for (int j = 0; j < 32; j++)
                    a[(b0 + b) * 32 + (size_t)j] = buf[b].qs[j];
            }
        }
    }
    (void)thread;
}

/* Columns are cut at multiples of 16 from 0 whatever the task split, and a
 * tile at the right edge (fewer than 16 real columns) goes through a
 * scratch tile with a zero-padded bias. */
static void q8_task(void *ctx, size_t task, int thread) {
    const q8_job *job = ctx;
    size_t n = job->w->n, nb = job->nb;
    size_t c0 = (task % job->n_col_tasks) * job->cols_per;
    size_t c1 = c0 + job->cols_per < n ? c0 + job->cols_per : n;
    size_t i0 = (task / job->n_col_tasks) * job->rows_per;
    size_t i1 = i0 + job->rows_per < job->m ? i0 + job->rows_per : job->m;
    float scratch[CPU_Q8_0_MR * 16], edge_bias[16];
    for (size_t c = c0; c < c1; c += 16) {
        size_t nc = n - c < 16 ? n - c : 16;
        cpu_q8_0_tile t = {.w = (const uint8_t *)job->w->data + c / 8 * nb * CPU_Q8X8_BYTES,
                           .nb = nb,
                           .lda = nb * 32,
                           .ldd = nb,
                           .prefetch = job->prefetch,
                           .bias = job->bias ? job->bias + c : NULL,
                           .act = job->act};
        if (nc < 16 && job->bias) {
            memset(edge_bias, 0, sizeof edge_bias);
            memcpy(edge_bias, job->bias + c, nc * sizeof *edge_bias);
            t.bias = edge_bias;
        }
        for (size_t i = i0; i < i1; i += CPU_Q8_0_MR) {
            t.mr = (int)(i1 - i < CPU_Q8_0_MR ? i1 - i : CPU_Q8_0_MR);
            t.a = job->a + i * t.lda;
            t.ad = job->ad + i * t.ldd;
            float *y = job->y + i * job->ldy + c;
            if (nc == 16) {
                t.out = y;
                t.ldo = job->ldy;
                job->tile(&t);
                continue;
            }
            t.out = scratch;
            t.ldo = 16;
            job->tile(&t);
            for (int r = 0; r < t.mr; r++)
                memcpy(y + (size_t)r * job->ldy, scratch + 16 * r, nc * sizeof *y);
        }
    }
    (void)thread;
}

void cpu_q8_0_linear(const cpu_quant_kernels *qk, const ia_packed_weight *w, const float *bias,
                     ia_activation act, const float *x, size_t ldx, float *y, size_t ldy, size_t m,
                     ia_threadpool *pool) {
    if (m == 0)
        return;
    q8_job job = {.tile = qk->q8_0_tile ? qk->q8_0_tile : cpu_q8_0_tile_generic,
                  .quantize = qk->quantize_qa32 ? qk->quantize_qa32 : cpu_quantize_qa32,
                  .quantize_i16 = qk->quantize_q8_0_i16,
                  .w = w,
                  .bias = bias,
                  .act = act,
                  .x = x,
                  .ldx = ldx,
                  .y = y,
                  .ldy = ldy,
                  .m = m,
                  .nb = w->k / 32};
    size_t per_row = job.nb * (32 * sizeof(int16_t) + sizeof(float));
    _Alignas(64) uint8_t stack[STACK_ACT];
    uint8_t *heap = NULL, *buf = stack;
    if (m * per_row > sizeof stack) {
        heap = ia_malloc_aligned(m * per_row, 64);
        if (!heap) {
            ia_log(IA_LOG_ERROR, "linear: no memory for %zu quantised rows; output set to NaN", m);
            for (size_t i = 0; i < m; i++)
                for (size_t j = 0; j < w->n; j++)
                    y[i * ldy + j] = NAN;
            return;
        }
        buf = heap;
    }
    job.a = (int16_t *)buf;
    job.ad = (float *)(buf + m * job.nb * 32 * sizeof(int16_t));
    ia_threadpool_run(pool, (m + 15) / 16, q8_quantize_task, &job);

    size_t threads = pool ? (size_t)ia_threadpool_size(pool) : 1;
    size_t pairs = (w->n + 15) / 16; /* 16-column tiles */
    if (m <= CPU_GEMV_MAX_M) {
        /* Decode: every weight is read once, so a few long contiguous runs
         * of columns per thread, prefetched ahead. */
        size_t tasks = threads == 1 ? 1 : 4 * threads;
        if (tasks > pairs)
            tasks = pairs;
        job.cols_per = (pairs + tasks - 1) / tasks * 16;
        job.rows_per = m;
        job.prefetch = true;
    } else {
        job.cols_per = COLS_PER;
        job.rows_per = ROWS_PER;
        size_t row_tasks = (m + ROWS_PER - 1) / ROWS_PER;
        while (job.cols_per > 16 &&
               row_tasks * ((w->n + job.cols_per - 1) / job.cols_per) < 4 * threads)
            job.cols_per /= 2;
    }
    job.n_col_tasks = (w->n + job.cols_per - 1) / job.cols_per;
    size_t n_tasks = job.n_col_tasks * ((m + job.rows_per - 1) / job.rows_per);
    ia_threadpool_run(pool, n_tasks, q8_task, &job);
    ia_free_aligned(heap);
}
