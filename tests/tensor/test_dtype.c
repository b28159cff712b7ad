/* Tests for tensor/: dtype sizes and float conversions. */
#include "ia/tensor.h"
#include "test.h"

TEST(dtype_sizes) {
    size_t n;
    CHECK_OK(ia_dtype_bytes(IA_DTYPE_F32, 10, &n));
    CHECK_EQ_INT(n, 40);
    CHECK_OK(ia_dtype_bytes(IA_DTYPE_BF16, 10, &n));
    CHECK_EQ_INT(n, 20);
    CHECK_ERR(ia_dtype_bytes(IA_DTYPE_I64, UINT64_MAX / 2, &n), IA_ENOMEM, "overflow");
    CHECK(ia_dtype_get_info(IA_DTYPE_COUNT) == NULL);
}

TEST(f16_round_trip_and_rounding) {
    /* every finite f16 survives f16 -> f32 -> f16 */
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff))
            continue; /* NaN payloads need not round-trip */
        float f = ia_f16_to_f32((uint16_t)h);
        CHECK_EQ_INT(ia_f32_to_f16(f), h);
    }
    CHECK_EQ_INT(ia_f32_to_f16(1.0f), 0x3c00);
    CHECK_EQ_INT(ia_f32_to_f16(65504.0f), 0x7bff);
    CHECK_EQ_INT(ia_f32_to_f16(65520.0f), 0x7c00);
    CHECK_EQ_INT(ia_f32_to_f16(1.0f + 1.0f / 2048), 0x3c00); /* tie to even */
    CHECK_EQ_INT(ia_f32_to_f16(5.9604645e-8f), 0x0001);      /* smallest subnormal */
    CHECK_NEAR(ia_f16_to_f32(0x0001), 5.9604645e-8, 1e-15);
}

TEST(bf16_rounding) {
    CHECK_EQ_INT(ia_f32_to_bf16(1.0f), 0x3f80);
    CHECK_NEAR(ia_bf16_to_f32(ia_f32_to_bf16(3.14159f)), 3.140625, 1e-6);
    float x = ia_bf16_to_f32(0x3f80) + 1.0f / 256; /* halfway between 0x3f80 and 0x3f81 */
    CHECK_EQ_INT(ia_f32_to_bf16(x), 0x3f80);
    CHECK(ia_bf16_to_f32(ia_f32_to_bf16(NAN)) != ia_bf16_to_f32(ia_f32_to_bf16(NAN)));
}
