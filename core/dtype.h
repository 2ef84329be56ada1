// Element types plm tensors hold, their sizes, and host-side bf16/f16 storage types with exact
// conversions (round-to-nearest-even, NaN preserved), usable from host and device code.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#if defined(__CUDACC__)
#define PLM_HOST_DEVICE __host__ __device__
#else
#define PLM_HOST_DEVICE
#endif

namespace plm {

enum class DType : uint8_t { kF32, kBF16, kF16, kI32, kI64, kU8 };

constexpr size_t dtype_size(DType t) {
  switch (t) {
    case DType::kF32: return 4;
    case DType::kBF16: return 2;
    case DType::kF16: return 2;
    case DType::kI32: return 4;
    case DType::kI64: return 8;
    case DType::kU8: return 1;
  }
  return 0;
}

constexpr bool dtype_is_float(DType t) {
  return t == DType::kF32 || t == DType::kBF16 || t == DType::kF16;
}

std::string_view dtype_name(DType t);

PLM_HOST_DEVICE inline uint32_t float_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof(u));
  return u;
}

PLM_HOST_DEVICE inline float float_from_bits(uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof(f));
  return f;
}

// bfloat16 storage: the top 16 bits of an IEEE float.
struct bf16 {
  uint16_t bits = 0;
  bf16() = default;
  PLM_HOST_DEVICE explicit bf16(float f) : bits(round_from_float(f)) {}
  PLM_HOST_DEVICE explicit operator float() const { return float_from_bits(uint32_t{bits} << 16); }

  PLM_HOST_DEVICE static uint16_t round_from_float(float f) {
    const uint32_t u = float_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);  // quiet NaN
    const uint32_t rounding_bias = 0x7fffu + ((u >> 16) & 1u);
    return static_cast<uint16_t>((u + rounding_bias) >> 16);
  }
};

// IEEE binary16 storage.
struct f16 {
  uint16_t bits = 0;
  f16() = default;
  PLM_HOST_DEVICE explicit f16(float f) : bits(round_from_float(f)) {}
  PLM_HOST_DEVICE explicit operator float() const { return to_float(bits); }

  PLM_HOST_DEVICE static float to_float(uint16_t h) {
    const uint32_t sign = uint32_t{h & 0x8000u} << 16;
    const uint32_t exponent = (h >> 10) & 0x1fu;
    uint32_t mantissa = h & 0x3ffu;
    if (exponent == 0x1f) return float_from_bits(sign | 0x7f800000u | (mantissa << 13));
    if (exponent == 0) {
      if (mantissa == 0) return float_from_bits(sign);
      // Subnormal: value = mantissa * 2^-24, exact in float.
      const float magnitude = static_cast<float>(mantissa) * 5.9604644775390625e-8f;
      return sign ? -magnitude : magnitude;
    }
    return float_from_bits(sign | ((exponent + 112u) << 23) | (mantissa << 13));
  }

  PLM_HOST_DEVICE static uint16_t round_from_float(float f) {
    const uint32_t u = float_bits(f);
    const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
    const uint32_t abs = u & 0x7fffffffu;
    if (abs > 0x7f800000u) return sign | 0x7e00u;                  // NaN
    if (abs >= 0x477ff000u) return sign | 0x7c00u;                 // rounds to >= 65520: inf
    if (abs < 0x38800000u) {                                       // below the smallest normal half
      // Scale into the subnormal grid: magnitude / 2^-24, rounded to nearest even by float arithmetic.
      const float magnitude = float_from_bits(abs) * 16777216.0f;
      const float rounded = round_half_even(magnitude);
      return sign | static_cast<uint16_t>(rounded);
    }
    const uint32_t rounding_bias = 0xfffu + ((abs >> 13) & 1u);
    return sign | static_cast<uint16_t>((abs - 0x38000000u + rounding_bias) >> 13);
  }

 private:
  // Round half to even for values in [0, 1024]; avoids <cmath> rounding-mode dependence on device.
  PLM_HOST_DEVICE static float round_half_even(float x) {
    const float floor_x = static_cast<float>(static_cast<int32_t>(x));
    const float fraction = x - floor_x;
    if (fraction > 0.5f) return floor_x + 1.0f;
    if (fraction < 0.5f) return floor_x;
    return (static_cast<int32_t>(floor_x) % 2 == 0) ? floor_x : floor_x + 1.0f;
  }
};

// Maps a C++ element type to its DType.
template <typename T>
struct DTypeOf;
template <> struct DTypeOf<float> { static constexpr DType value = DType::kF32; };
template <> struct DTypeOf<bf16> { static constexpr DType value = DType::kBF16; };
template <> struct DTypeOf<f16> { static constexpr DType value = DType::kF16; };
template <> struct DTypeOf<int32_t> { static constexpr DType value = DType::kI32; };
template <> struct DTypeOf<int64_t> { static constexpr DType value = DType::kI64; };
template <> struct DTypeOf<uint8_t> { static constexpr DType value = DType::kU8; };

}  // namespace plm
