/*
 * quant_dot_avx2: the AVX2 integer dot products of quantised weights
 * (vpmaddubsw + vpmaddwd); the kernels themselves are in quant_dot_simd.h,
 * shared with the AVX-512 VNNI build.
 */
#define QDOT_VNNI 0
#define QDOT_TABLE cpu_quant_avx2
#include "kernels/cpu/quant_dot_simd.h"
