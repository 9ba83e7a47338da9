#pragma once
// ggml block formats to float32, value for value equal to the gguf Python
// package's `gguf.quants.dequantize` (and so to transformers' GGUF loading):
// the same float32 operations in the same order, the float16 scales widened
// exactly.
//
//   F32, F16, BF16   one value per element
//   Q8_0  [f16 d][32 x int8 q]         x = q * d
//   Q4_0  [f16 d][16 bytes of nibbles] x = d * (q - 8)
//   Q4_1  [f16 d][f16 m][16 bytes]     x = d * q + m
//
// In the 4-bit blocks byte j holds element j in its low nibble and element
// j + 16 in its high nibble.

#include <cstdint>
#include <string_view>

#include "models/gguf/gguf_file.h"

namespace peftcpp::gguf {

/// Whether dequantize() handles `type` (F32, F16, BF16, Q8_0, Q4_0, Q4_1).
bool can_dequantize(GgmlType type);

/// The float32 value of an IEEE half given by its bits (exact: every half is
/// a float).
float half_to_float(uint16_t bits);

/// Writes the `num_elements` float32 values stored at `data` in format `type`
/// to `out`. `num_elements` must be a multiple of the type's block size
/// (std::invalid_argument otherwise); every other type than the supported
/// ones is refused by name with std::runtime_error
/// "[where] expected one of F32, F16, BF16, Q8_0, Q4_0, Q4_1, got Q6_K
/// (hint: ...)". Large tensors are split across threads.
void dequantize(GgmlType type, const uint8_t* data, int64_t num_elements,
                float* out, std::string_view where);

}  // namespace peftcpp::gguf
