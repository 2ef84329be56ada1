// plm::cpu element-wise ops (add, mul, divide, scale, mul_rowwise, fill) and cast between f32, bf16 and f16:
// round-to-nearest-even including ties, overflow to inf, f16 subnormals, NaN, and exact round trips of
// every 16-bit pattern.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <utility>
#include <vector>

#include "core/kernels/backends.h"
#include "tests/core/kernels/reference_check.h"
#include "tests/core/test_util.h"

namespace plm {
namespace {

using testing::close_to_reference;
using testing::random_tensor;
using testing::to_doubles;

// One float rounding away from the double result.
constexpr double kFloatRtol = 1e-7;

TEST(CpuElementwiseTest, AddMulScaleMatchReference) {
  // (65, 3, 257) exceeds kMinParallelWork: the threaded path runs.
  OwnedTensor a = random_tensor({65, 3, 257}, 1), b = random_tensor({65, 3, 257}, 2);
  OwnedTensor sum(a.shape(), DType::kF32), product(a.shape(), DType::kF32), scaled(a.shape(), DType::kF32);
  OwnedTensor quotient(a.shape(), DType::kF32), divisor = random_tensor({65, 3, 257}, 6, 0.5f, 2.0f);
  cpu::add(sum, a, b);
  cpu::mul(product, a, b);
  cpu::divide(quotient, a, divisor);
  cpu::scale(scaled, a, -0.75f);
  const std::vector<double> av = to_doubles(a), bv = to_doubles(b), dv = to_doubles(divisor);
  std::vector<double> sum_ref(av.size()), product_ref(av.size()), quotient_ref(av.size()), scaled_ref(av.size());
  for (size_t i = 0; i < av.size(); ++i) {
    sum_ref[i] = av[i] + bv[i];
    product_ref[i] = av[i] * bv[i];
    quotient_ref[i] = av[i] / dv[i];
    scaled_ref[i] = -0.75 * av[i];
  }
  EXPECT_TRUE(close_to_reference(sum, sum_ref, 0.0, kFloatRtol, "err_add"));
  EXPECT_TRUE(close_to_reference(product, product_ref, 0.0, kFloatRtol, "err_mul"));
  EXPECT_TRUE(close_to_reference(quotient, quotient_ref, 0.0, kFloatRtol, "err_divide"));
  EXPECT_TRUE(close_to_reference(scaled, scaled_ref, 0.0, kFloatRtol, "err_scale"));
  // In place: out aliasing an input.
  cpu::add(a, a, b);
  EXPECT_EQ(testing::max_abs_diff(a, sum), 0.0f);
}

TEST(CpuElementwiseTest, MulRowwiseScalesEveryRow) {
  OwnedTensor x = random_tensor({257, 129}, 3), w = random_tensor({129}, 4);
  OwnedTensor out({257, 129}, DType::kF32);
  cpu::mul_rowwise(out, x, w);
  const std::vector<double> xv = to_doubles(x), wv = to_doubles(w);
  std::vector<double> expected(xv.size());
  for (size_t i = 0; i < xv.size(); ++i) expected[i] = xv[i] * wv[i % 129];
  EXPECT_TRUE(close_to_reference(out, expected, 0.0, kFloatRtol, "err_mul_rowwise"));
}

TEST(CpuElementwiseTest, FillWritesEveryElement) {
  OwnedTensor out = random_tensor({3, 65}, 5);
  cpu::fill(out, 2.5f);
  EXPECT_TRUE(close_to_reference(out, std::vector<double>(3 * 65, 2.5), 0.0, 0.0, "err_fill"));
}

// ---- cast ----

uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  return u;
}

// Casts the f32 values to `dtype` and returns the 16-bit patterns.
std::vector<uint16_t> cast_bits(const std::vector<float>& values, DType dtype) {
  OwnedTensor src = testing::tensor_from({static_cast<int64_t>(values.size())}, values);
  OwnedTensor dst(src.shape(), dtype);
  cpu::cast(dst, src);
  std::vector<uint16_t> bits(values.size());
  std::memcpy(bits.data(), dst.view().data(), bits.size() * sizeof(uint16_t));
  return bits;
}

TEST(CpuCastTest, Bf16RoundsToNearestEven) {
  const float one = 1.0f, ulp = std::ldexp(1.0f, -7);  // bf16 keeps 7 mantissa bits
  const std::vector<float> values = {
      one + ulp / 2,                          // tie, 1.0 is even: down
      one + 3 * ulp / 2,                      // tie, 1 + 2 ulp is even: up
      one + ulp / 2 + std::ldexp(1.0f, -20),  // just above the tie: up
      -(one + ulp / 2),                       // ties are symmetric in sign
      std::numeric_limits<float>::max(),      // past the largest bf16 + half ulp: inf
      std::numeric_limits<float>::infinity(), 0.0f, -0.0f};
  const std::vector<uint16_t> expected = {0x3f80, 0x3f82, 0x3f81, 0xbf80, 0x7f80, 0x7f80, 0x0000, 0x8000};
  EXPECT_EQ(cast_bits(values, DType::kBF16), expected);
}

TEST(CpuCastTest, F16RoundsToNearestEven) {
  const float one = 1.0f, ulp = std::ldexp(1.0f, -10);  // f16 keeps 10 mantissa bits
  const float subnormal = std::ldexp(1.0f, -24);        // smallest f16 subnormal
  const std::vector<float> values = {
      one + ulp / 2, one + 3 * ulp / 2, -(one + 3 * ulp / 2),
      65504.0f,                                 // largest f16
      65519.0f,                                 // below the overflow tie: largest f16
      65520.0f,                                 // overflow tie rounds to even: inf
      subnormal / 2,                            // subnormal tie, 0 is even: zero
      3 * subnormal / 2,                        // subnormal tie: up to 2 * subnormal
      std::ldexp(1.0f, -14) - subnormal / 4,    // just below the smallest normal: rounds up to it
  };
  const std::vector<uint16_t> expected = {0x3c00, 0x3c02, 0xbc02, 0x7bff, 0x7bff, 0x7c00, 0x0000, 0x0002, 0x0400};
  EXPECT_EQ(cast_bits(values, DType::kF16), expected);
}

TEST(CpuCastTest, NanStaysNan) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (const DType dtype : {DType::kBF16, DType::kF16}) {
    OwnedTensor src = testing::tensor_from({2}, std::vector<float>{nan, -nan});
    OwnedTensor narrow({2}, dtype), back({2}, DType::kF32);
    cpu::cast(narrow, src);
    cpu::cast(back, narrow);
    for (const float v : testing::to_vector(back)) EXPECT_TRUE(std::isnan(v)) << dtype_name(dtype);
  }
}

// Every 16-bit pattern of `dtype` widened to f32 and narrowed back is unchanged (NaNs stay NaN).
void check_round_trip(DType dtype) {
  OwnedTensor all({65536}, dtype), wide({65536}, DType::kF32), back({65536}, dtype);
  uint16_t* bits = static_cast<uint16_t*>(all.view().data());
  for (uint32_t i = 0; i < 65536; ++i) bits[i] = static_cast<uint16_t>(i);
  cpu::cast(wide, all);
  cpu::cast(back, wide);
  const uint16_t* back_bits = static_cast<const uint16_t*>(back.view().data());
  const float* wide_values = wide.data_as<float>();
  int64_t num_mismatches = 0;
  for (uint32_t i = 0; i < 65536; ++i) {
    if (std::isnan(wide_values[i])) continue;
    num_mismatches += back_bits[i] != i;
  }
  EXPECT_EQ(num_mismatches, 0) << dtype_name(dtype);
}

TEST(CpuCastTest, EveryBf16AndF16PatternRoundTrips) {
  check_round_trip(DType::kBF16);
  check_round_trip(DType::kF16);
}

// Nearest value of a 16-bit format to v, ties to the even pattern, by search over all its finite
// non-negative values (`table`, ascending), independent of the bit tricks in core/dtype.h.
uint16_t nearest_even(float v, const std::vector<std::pair<double, uint16_t>>& table, double overflow_at,
                      uint16_t inf_bits) {
  const uint16_t sign = std::signbit(v) ? 0x8000 : 0;
  const double mag = std::abs(static_cast<double>(v));
  if (mag >= overflow_at) return sign | inf_bits;  // the tie at overflow_at goes to inf (even)
  auto hi = std::lower_bound(table.begin(), table.end(), std::pair{mag, uint16_t{0}});
  if (hi == table.end()) return sign | table.back().second;
  if (hi == table.begin()) return sign | hi->second;
  const auto lo = std::prev(hi);
  const double below = mag - lo->first, above = hi->first - mag;
  if (below < above) return sign | lo->second;
  if (above < below) return sign | hi->second;
  return sign | ((lo->second & 1) == 0 ? lo->second : hi->second);
}

std::vector<std::pair<double, uint16_t>> finite_values(DType dtype, uint16_t inf_bits) {
  OwnedTensor all({inf_bits}, dtype), wide({inf_bits}, DType::kF32);
  uint16_t* bits = static_cast<uint16_t*>(all.view().data());
  for (uint16_t i = 0; i < inf_bits; ++i) bits[i] = i;
  cpu::cast(wide, all);
  std::vector<std::pair<double, uint16_t>> table;
  for (uint16_t i = 0; i < inf_bits; ++i) table.emplace_back(wide.data_as<float>()[i], i);
  return table;
}

TEST(CpuCastTest, RandomValuesRoundToTheNearestEvenValue) {
  struct Format {
    DType dtype;
    uint16_t inf_bits;
    double overflow_at;  // largest finite + half its ulp
  };
  const Format formats[] = {{DType::kBF16, 0x7f80, std::ldexp(255.0, 120) + std::ldexp(1.0, 119)},
                            {DType::kF16, 0x7c00, 65520.0}};
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<float> mantissa(1.0f, 2.0f);
  std::uniform_int_distribution<int> exponent(-30, 20);  // covers f16 subnormals and overflow
  std::vector<float> values(20000);
  for (float& v : values) v = (rng() & 1 ? -1.0f : 1.0f) * std::ldexp(mantissa(rng), exponent(rng));
  for (const Format& f : formats) {
    const auto table = finite_values(f.dtype, f.inf_bits);
    const std::vector<uint16_t> actual = cast_bits(values, f.dtype);
    int64_t num_mismatches = 0;
    for (size_t i = 0; i < values.size(); ++i) {
      const uint16_t expected = nearest_even(values[i], table, f.overflow_at, f.inf_bits);
      if (actual[i] != expected && num_mismatches++ < 5) {
        ADD_FAILURE() << dtype_name(f.dtype) << " of " << values[i] << " (0x" << std::hex << bits_of(values[i])
                      << "): got 0x" << actual[i] << ", nearest-even 0x" << expected << std::dec;
      }
    }
    EXPECT_EQ(num_mismatches, 0) << dtype_name(f.dtype);
  }
}

TEST(CpuCastTest, Bf16ToF16AndBackAgreeWithTheF32Path) {
  OwnedTensor x = random_tensor({3, 17}, 8, -100.0f, 100.0f, DType::kBF16);
  OwnedTensor direct({3, 17}, DType::kF16), wide({3, 17}, DType::kF32), via_f32({3, 17}, DType::kF16);
  cpu::cast(direct, x);
  cpu::cast(wide, x);
  cpu::cast(via_f32, wide);
  EXPECT_EQ(testing::max_abs_diff(direct, via_f32), 0.0f);
  OwnedTensor back({3, 17}, DType::kBF16), back_via_f32({3, 17}, DType::kBF16), direct_wide({3, 17}, DType::kF32);
  cpu::cast(back, direct);
  cpu::cast(direct_wide, direct);
  cpu::cast(back_via_f32, direct_wide);
  EXPECT_EQ(testing::max_abs_diff(back, back_via_f32), 0.0f);
  // Same dtype: a copy.
  OwnedTensor copy({3, 17}, DType::kBF16);
  cpu::cast(copy, x);
  EXPECT_EQ(testing::max_abs_diff(copy, x), 0.0f);
}

}  // namespace
}  // namespace plm
