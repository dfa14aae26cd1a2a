// Types and helpers shared by every kernel, host and device alike.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define MOAFAST_HD __host__ __device__ __forceinline__
#else
#define MOAFAST_HD inline __attribute__((always_inline))
#endif

namespace moafast {

// Dtype codes passed across the binding; the Python side owns the mapping (moafast/ops/_plumbing.py).
enum class DType : int32_t { kFloat32 = 0, kFloat64 = 1, kBFloat16 = 2, kFloat16 = 3 };

MOAFAST_HD int64_t dtype_size(DType dtype) {
  return dtype == DType::kFloat64 ? 8 : dtype == DType::kFloat32 ? 4 : 2;
}

MOAFAST_HD float bits_to_float(uint32_t bits) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(bits);
#else
  float out;
  std::memcpy(&out, &bits, sizeof(out));
  return out;
#endif
}

MOAFAST_HD uint32_t float_to_bits(float value) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(value);
#else
  uint32_t out;
  std::memcpy(&out, &value, sizeof(out));
  return out;
#endif
}

// bfloat16 is the upper half of a float32.
MOAFAST_HD float bf16_to_float(uint16_t bits) { return bits_to_float(static_cast<uint32_t>(bits) << 16); }

// Round to nearest even; NaN stays NaN (quiet bit forced so truncation cannot produce inf).
MOAFAST_HD uint16_t float_to_bf16(float value) {
  uint32_t bits = float_to_bits(value);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x0040u);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

// IEEE half <-> float without hardware support, exact for every value (denormals included).
MOAFAST_HD float f16_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1fu;
  const uint32_t mantissa = h & 0x3ffu;
  if (exponent == 0x1fu) return bits_to_float(sign | 0x7f800000u | (mantissa << 13));
  if (exponent != 0) return bits_to_float(sign | ((exponent + 112u) << 23) | (mantissa << 13));
  // Denormal or zero: mantissa * 2^-24, exact in float32.
  const float magnitude = static_cast<float>(mantissa) * 5.9604644775390625e-8f;
  return sign ? -magnitude : magnitude;
}

MOAFAST_HD uint16_t float_to_f16(float value) {
  const uint32_t bits = float_to_bits(value);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const uint32_t abs_bits = bits & 0x7fffffffu;
  if (abs_bits > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);
  if (abs_bits >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds to >= 65520: inf
  if (abs_bits < 0x38800000u) {
    // Result is a half denormal: scale into integer range and round to nearest even.
    const float scaled = bits_to_float(abs_bits) * 16777216.0f;  // x * 2^24
    const float rounded = (scaled + 12582912.0f) - 12582912.0f;
    return static_cast<uint16_t>(sign | static_cast<uint16_t>(rounded));
  }
  uint32_t rebased = abs_bits - (112u << 23);
  rebased += 0xfffu + ((rebased >> 13) & 1u);
  return static_cast<uint16_t>(sign | static_cast<uint16_t>(rebased >> 13));
}

template <typename T> struct Storage;
template <> struct Storage<float> {
  using type = float;
  MOAFAST_HD static float load(float v) { return v; }
  MOAFAST_HD static float store(float v) { return v; }
};
template <> struct Storage<double> {
  using type = double;
  MOAFAST_HD static double load(double v) { return v; }
  MOAFAST_HD static double store(double v) { return v; }
};

// Tag types for the 16-bit formats, stored as raw uint16_t so no vendor header is needed.
struct bf16_t {};
struct f16_t {};
template <> struct Storage<bf16_t> {
  using type = uint16_t;
  MOAFAST_HD static float load(uint16_t v) { return bf16_to_float(v); }
  MOAFAST_HD static uint16_t store(float v) { return float_to_bf16(v); }
};
template <> struct Storage<f16_t> {
  using type = uint16_t;
  MOAFAST_HD static float load(uint16_t v) { return f16_to_float(v); }
  MOAFAST_HD static uint16_t store(float v) { return float_to_f16(v); }
};

// Accumulation type: float64 for float64 inputs, float32 for everything else.
template <typename T> struct Acc { using type = float; };
template <> struct Acc<double> { using type = double; };

}  // namespace moafast
