#include "models/gguf/dequantize.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "common/error.h"

namespace peftcpp::gguf {

namespace {

// The exact float operations below (one multiply, then one add for Q4_1)
// match numpy only without fused multiply-add, which would round once
// instead of twice.
#if defined(__FP_FAST_FMAF) && !defined(PEFTCPP_ALLOW_FMA)
#pragma GCC optimize("fp-contract=off")
#endif

constexpr int64_t kBlock = 32;  // QK4_0 = QK4_1 = QK8_0

uint16_t load_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

// Element ranges [begin, end) in units of blocks, so every function below
// handles whole blocks.
void dequantize_range(GgmlType type, const uint8_t* data, int64_t begin,
                      int64_t end, float* out) {
  switch (type) {
    case GgmlType::kF32:
      std::memcpy(out + begin, data + begin * 4, (end - begin) * 4);
      return;
    case GgmlType::kF16:
      for (int64_t i = begin; i < end; ++i) {
        out[i] = half_to_float(load_u16(data + 2 * i));
      }
      return;
    case GgmlType::kBF16:
      // bfloat16 is the upper half of a float32.
      for (int64_t i = begin; i < end; ++i) {
        const uint32_t bits = uint32_t{load_u16(data + 2 * i)} << 16;
        std::memcpy(out + i, &bits, 4);
      }
      return;
    case GgmlType::kQ8_0:
      for (int64_t b = begin; b < end; ++b) {
        const uint8_t* block = data + b * (2 + kBlock);
        const float d = half_to_float(load_u16(block));
        const auto* q = reinterpret_cast<const int8_t*>(block + 2);
        float* o = out + b * kBlock;
        for (int64_t j = 0; j < kBlock; ++j) {
          o[j] = static_cast<float>(q[j]) * d;
        }
      }
      return;
    case GgmlType::kQ4_0:
      for (int64_t b = begin; b < end; ++b) {
        const uint8_t* block = data + b * (2 + kBlock / 2);
        const float d = half_to_float(load_u16(block));
        const uint8_t* q = block + 2;
        float* o = out + b * kBlock;
        for (int64_t j = 0; j < kBlock / 2; ++j) {
          o[j] = d * static_cast<float>((q[j] & 0x0F) - 8);
          o[j + kBlock / 2] = d * static_cast<float>((q[j] >> 4) - 8);
        }
      }
      return;
    case GgmlType::kQ4_1:
      for (int64_t b = begin; b < end; ++b) {
        const uint8_t* block = data + b * (4 + kBlock / 2);
        const float d = half_to_float(load_u16(block));
        const float m = half_to_float(load_u16(block + 2));
        const uint8_t* q = block + 4;
        float* o = out + b * kBlock;
        for (int64_t j = 0; j < kBlock / 2; ++j) {
          const float lo = d * static_cast<float>(q[j] & 0x0F);
          const float hi = d * static_cast<float>(q[j] >> 4);
          o[j] = lo + m;
          o[j + kBlock / 2] = hi + m;
        }
      }
      return;
    default:
      return;  // unreachable: dequantize() refused the type
  }
}

}  // namespace

bool can_dequantize(GgmlType type) {
  switch (type) {
    case GgmlType::kF32:
    case GgmlType::kF16:
    case GgmlType::kBF16:
    case GgmlType::kQ8_0:
    case GgmlType::kQ4_0:
    case GgmlType::kQ4_1:
      return true;
    default:
      return false;
  }
}

float half_to_float(uint16_t h) {
  const uint32_t sign = uint32_t{h & 0x8000u} << 16;
  uint32_t exp = (h >> 10) & 0x1F;
  uint32_t mant = h & 0x3FF;
  uint32_t bits;
  if (exp == 0x1F) {
    // inf / nan, payload kept (as numpy does)
    bits = sign | 0x7F800000u | (mant << 13);
  } else if (exp != 0) {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  } else if (mant == 0) {
    bits = sign;
  } else {
    // Subnormal half: shift the mantissa up until its leading one is the
    // implicit bit of a normal float.
    int e = -1;
    do {
      ++e;
      mant <<= 1;
    } while ((mant & 0x400) == 0);
    bits = sign | ((127 - 15 - e) << 23) | ((mant & 0x3FF) << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

void dequantize(GgmlType type, const uint8_t* data, int64_t num_elements,
                float* out, std::string_view where) {
  if (!can_dequantize(type)) {
    throw std::runtime_error(error_message(
        where, "one of F32, F16, BF16, Q8_0, Q4_0, Q4_1", ggml_type_name(type),
        "this library does not dequantize " + ggml_type_name(type) +
            " yet; use a Q8_0, Q4_0, Q4_1, F16, BF16 or F32 file of the "
            "model (llama.cpp's llama-quantize --allow-requantize can "
            "convert one)"));
  }
  const bool blocked = type == GgmlType::kQ8_0 || type == GgmlType::kQ4_0 ||
                       type == GgmlType::kQ4_1;
  const int64_t block = blocked ? kBlock : 1;
  if (num_elements < 0 || num_elements % block != 0) {
    throw std::invalid_argument(error_message(
        where,
        "a number of elements that is a multiple of the " +
            ggml_type_name(type) + " block size " + std::to_string(block),
        std::to_string(num_elements)));
  }
  const int64_t units = num_elements / block;
  // Threads pay off only for large tensors (the 49152 x 576 embedding); a
  // thread per ~1M elements, at most one per core.
  constexpr int64_t kElementsPerThread = int64_t{1} << 20;
  const int64_t hw = std::max(1u, std::thread::hardware_concurrency());
  const int64_t n_threads = std::min<int64_t>(
      hw, std::max<int64_t>(1, num_elements / kElementsPerThread));
  if (n_threads <= 1) {
    dequantize_range(type, data, 0, units, out);
    return;
  }
  std::vector<std::thread> threads;
  threads.reserve(n_threads - 1);
  const int64_t per = (units + n_threads - 1) / n_threads;
  for (int64_t t = 1; t < n_threads; ++t) {
    const int64_t b = std::min(units, t * per);
    const int64_t e = std::min(units, b + per);
    threads.emplace_back(dequantize_range, type, data, b, e, out);
  }
  dequantize_range(type, data, 0, std::min(units, per), out);
  for (auto& th : threads) {
    th.join();
  }
}

}  // namespace peftcpp::gguf
