/*
 * quant_dot_avx512: the integer dot products of quantised weights with AVX-512
 * VNNI (vpdpbusd on 256-bit vectors, AVX512VL), from quant_dot_simd.h. The
 * backend selects this table only when the CPU reports AVX512_VNNI; 256-bit
 * vectors keep the block unpacking identical to the AVX2 build and avoid the
 * frequency drop of 512-bit integer work on older AVX-512 parts.
 */
#define QDOT_VNNI 1
#define QDOT_TABLE cpu_quant_avx512
#include "kernels/cpu/quant_dot_simd.h"
