/*
 * backend: CPU feature detection and the three CPU variant tables.
 *
 * Features come from cpuid, and a vector ISA counts only when the OS saves
 * its registers on context switches (XCR0 via xgetbv): a CPU with AVX-512
 * under a kernel or hypervisor that does not enable zmm state must not get
 * the AVX-512 variant. Detection runs once; the IA_CPU_VARIANT environment
 * variable is read on every ia_backend_cpu call so that tests and benchmarks
 * can switch variants inside one process.
 */
#include "kernels/cpu/cpu_internal.h"

#include "ia/quant.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

static cpu_features features;
static pthread_once_t features_once = PTHREAD_ONCE_INIT;

#if defined(__x86_64__) || defined(__i386__)
static uint64_t read_xcr0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}
#endif

static void detect(void) {
#if defined(__x86_64__) || defined(__i386__)
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return;
    bool osxsave = c & (1u << 27), avx = c & (1u << 28), fma = c & (1u << 12),
         f16c = c & (1u << 29);
    if (!osxsave || !avx)
        return;
    uint64_t xcr0 = read_xcr0();
    bool ymm_os = (xcr0 & 0x6) == 0x6;   /* SSE and AVX state */
    bool zmm_os = (xcr0 & 0xe6) == 0xe6; /* plus opmask, ZMM_Hi256, Hi16_ZMM */
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return;
    bool avx2 = b & (1u << 5);
    bool f512 = b & (1u << 16), dq = b & (1u << 17), bw = b & (1u << 30), vl = b & (1u << 31);
    features.avx2 = ymm_os && avx2 && fma && f16c;
    features.avx512 = features.avx2 && zmm_os && f512 && dq && bw && vl;
    features.avx512_vnni = features.avx512 && (c & (1u << 11));
    if (features.avx512 && __get_cpuid_count(7, 1, &a, &b, &c, &d))
        features.avx512_bf16 = a & (1u << 5);
#endif
}

const cpu_features *cpu_get_features(void) {
    pthread_once(&features_once, detect);
    return &features;
}

/* ---- variant entry points ----------------------------------------------------------- */

static ia_status pack_nr16(const ia_tensor *const *parts, int n_parts, ia_dtype compute,
                           ia_packed_weight **out) {
    return cpu_weight_pack(parts, n_parts, compute, 16, out);
}

static ia_status pack_nr32(const ia_tensor *const *parts, int n_parts, ia_dtype compute,
                           ia_packed_weight **out) {
    return cpu_weight_pack(parts, n_parts, compute, 32, out);
}

static void linear_generic(const ia_packed_weight *w, const float *bias, ia_activation act,
                           const float *x, size_t ldx, float *y, size_t ldy, size_t m,
                           ia_threadpool *pool) {
    cpu_linear_run(&cpu_gemm_generic, w, bias, act, x, ldx, y, ldy, m, pool);
}

static void linear_avx2(const ia_packed_weight *w, const float *bias, ia_activation act,
                        const float *x, size_t ldx, float *y, size_t ldy, size_t m,
                        ia_threadpool *pool) {
    cpu_linear_run(&cpu_gemm_avx2, w, bias, act, x, ldx, y, ldy, m, pool);
}

static void linear_avx512(const ia_packed_weight *w, const float *bias, ia_activation act,
                          const float *x, size_t ldx, float *y, size_t ldy, size_t m,
                          ia_threadpool *pool) {
    const cpu_features *f = cpu_get_features();
    if (ia_dtype_is_quantized(w->compute)) {
        /* Integer dot products: vpdpbusd where the CPU has VNNI, except for
         * Q4_K, Q3_K and Q2_K, whose VNNI kernels measured at half the AVX2
         * ones' rate for decode on a Xeon with AVX512_VNNI (docs/BENCHMARKS.md,
         * bench_quant_gemv); both tables give the same bits. */
        ia_dtype t = w->compute;
        bool vnni =
            f->avx512_vnni && t != IA_DTYPE_Q4_K && t != IA_DTYPE_Q3_K && t != IA_DTYPE_Q2_K;
        cpu_quant_linear(vnni ? &cpu_quant_avx512 : &cpu_quant_avx2, w, bias, act, x, ldx, y, ldy,
                         m, pool);
        return;
    }
    const cpu_gemm_kernel *k = f->avx512_bf16 ? &cpu_gemm_avx512_bf16 : &cpu_gemm_avx512;
    cpu_linear_run(k, w, bias, act, x, ldx, y, ldy, m, pool);
}

static const ia_backend variant_generic = {
    .name = "cpu-generic",
    .weight_pack = pack_nr16,
    .weight_free = cpu_weight_free,
    .weight_shape = cpu_weight_shape,
    .linear = linear_generic,
    .layer_norm = cpu_layer_norm_generic,
    .attention = cpu_attention_generic,
    .embedding_gather = cpu_embedding_gather,
    .pool = cpu_pool_generic,
    .l2_normalize = cpu_l2_normalize_generic,
    .softmax = cpu_softmax_generic,
    .activate = cpu_activate_generic,
    .rms_norm = cpu_rms_norm_generic,
    .rope = cpu_rope_generic,
    .swiglu = cpu_swiglu_generic,
    .kv_attention = cpu_kv_attention_generic,
};

static const ia_backend variant_avx2 = {
    .name = "cpu-avx2",
    .weight_pack = pack_nr16,
    .weight_free = cpu_weight_free,
    .weight_shape = cpu_weight_shape,
    .linear = linear_avx2,
    .layer_norm = cpu_layer_norm_avx2,
    .attention = cpu_attention_avx2,
    .embedding_gather = cpu_embedding_gather,
    .pool = cpu_pool_generic,
    .l2_normalize = cpu_l2_normalize_avx2,
    .softmax = cpu_softmax_avx2,
    .activate = cpu_activate_avx2,
    .rms_norm = cpu_rms_norm_avx2,
    .rope = cpu_rope_avx2,
    .swiglu = cpu_swiglu_avx2,
    .kv_attention = cpu_kv_attention_avx2,
};

/* AVX-512 CPUs have AVX2, and outside the GEMM the AVX2 ops are bound by
 * memory or by exp/erf throughput rather than vector width. */
static const ia_backend variant_avx512 = {
    .name = "cpu-avx512",
    .weight_pack = pack_nr32,
    .weight_free = cpu_weight_free,
    .weight_shape = cpu_weight_shape,
    .linear = linear_avx512,
    .layer_norm = cpu_layer_norm_avx2,
    .attention = cpu_attention_avx2,
    .embedding_gather = cpu_embedding_gather,
    .pool = cpu_pool_generic,
    .l2_normalize = cpu_l2_normalize_avx2,
    .softmax = cpu_softmax_avx2,
    .activate = cpu_activate_avx2,
    .rms_norm = cpu_rms_norm_avx2,
    .rope = cpu_rope_avx2,
    .swiglu = cpu_swiglu_avx2,
    .kv_attention = cpu_kv_attention_avx2,
};

/* ---- public API ------------------------------------------------------------------------ */

bool ia_cpu_has_variant(const char *name) {
    const cpu_features *f = cpu_get_features();
    if (!name)
        return false;
    if (strcmp(name, "generic") == 0 || strcmp(name, "cpu-generic") == 0)
        return true;
    if (strcmp(name, "avx2") == 0 || strcmp(name, "cpu-avx2") == 0)
        return f->avx2;
    if (strcmp(name, "avx512") == 0 || strcmp(name, "cpu-avx512") == 0)
        return f->avx512;
    return false;
}

const ia_backend *ia_backend_cpu_variant(const char *name) {
    if (!ia_cpu_has_variant(name))
        return NULL;
    if (strstr(name, "avx512"))
        return &variant_avx512;
    if (strstr(name, "avx2"))
        return &variant_avx2;
    return &variant_generic;
}

const ia_backend *ia_backend_cpu(void) {
    static const char *const order[] = {"avx512", "avx2", "generic"};
    const char *want = getenv("IA_CPU_VARIANT");
    size_t start = 0;
    if (want && *want) {
        /* The override may only lower the choice; an unknown name is ignored. */
        for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
            if (strcmp(want, order[i]) == 0)
                start = i;
        bool known = false;
        for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
            known |= strcmp(want, order[i]) == 0;
        if (!known)
            ia_log(IA_LOG_WARN, "IA_CPU_VARIANT=%s is not one of avx512, avx2, generic; ignored",
                   want);
    }
    for (size_t i = start; i < sizeof order / sizeof order[0]; i++)
        if (ia_cpu_has_variant(order[i]))
            return ia_backend_cpu_variant(order[i]);
    return &variant_generic;
}
