// PyTorch's aten/src/ATen/native/cpu/UpSampleKernel.cpp uint8 antialiased path, re-derived: weights in
// double with PyTorch's operation order (_compute_indices_min_size_weights_aa), rounded to int16 at the
// axis precision (_compute_index_ranges_int16_weights), then integer dot products with half an LSB added
// and an arithmetic shift (basic_loop_aa_horizontal/vertical<uint8_t>). Integer sums are exact, so the
// loop order (and PyTorch's AVX variants) cannot change a result.
#include "data/resize.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/check.h"

namespace plm::data {
namespace {

constexpr int kMaxPrecision = 22;
constexpr int kInt16Limit = 1 << 15;

// Keys cubic with a = -0.5, in the order of PyTorch's cubic_convolution1/2 (the rounding must match).
double keys_cubic(double x) {
  constexpr double a = -0.5;
  x = std::abs(x);
  if (x < 1.0) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2.0) return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
  return 0.0;
}

uint8_t clamp_to_u8(int32_t value) { return static_cast<uint8_t>(std::clamp(value, 0, 255)); }

// (height, width) -> (height, out_width).
RgbImage resample_width(const RgbImage& src, const ResampleAxis& axis, int out_width) {
  RgbImage out(out_width, src.height);
  const int32_t half = 1 << (axis.precision - 1);
#pragma omp parallel for schedule(static)
  for (int y = 0; y < src.height; ++y) {
    const uint8_t* in_row = src.row(y);
    uint8_t* out_row = out.row(y);
    for (int x = 0; x < out_width; ++x) {
      const uint8_t* taps = in_row + axis.first[x] * kRgbChannels;
      const int16_t* w = &axis.weights[static_cast<size_t>(x) * axis.max_taps];
      int32_t r = half, g = half, b = half;
      for (int j = 0; j < axis.count[x]; ++j) {
        r += taps[j * 3 + 0] * w[j];
        g += taps[j * 3 + 1] * w[j];
        b += taps[j * 3 + 2] * w[j];
      }
      out_row[x * 3 + 0] = clamp_to_u8(r >> axis.precision);
      out_row[x * 3 + 1] = clamp_to_u8(g >> axis.precision);
      out_row[x * 3 + 2] = clamp_to_u8(b >> axis.precision);
    }
  }
  return out;
}

// (height, width) -> (out_height, width). Rows are combined whole, so the inner loop vectorises.
RgbImage resample_height(const RgbImage& src, const ResampleAxis& axis, int out_height) {
  RgbImage out(src.width, out_height);
  const int row_size = src.width * kRgbChannels;
  const int32_t half = 1 << (axis.precision - 1);
#pragma omp parallel
  {
    std::vector<int32_t> acc(row_size);
#pragma omp for schedule(static)
    for (int y = 0; y < out_height; ++y) {
      std::fill(acc.begin(), acc.end(), half);
      const int16_t* w = &axis.weights[static_cast<size_t>(y) * axis.max_taps];
      for (int j = 0; j < axis.count[y]; ++j) {
        const uint8_t* in_row = src.row(axis.first[y] + j);
        const int32_t wj = w[j];
        for (int k = 0; k < row_size; ++k) acc[k] += in_row[k] * wj;
      }
      uint8_t* out_row = out.row(y);
      for (int k = 0; k < row_size; ++k) out_row[k] = clamp_to_u8(acc[k] >> axis.precision);
    }
  }
  return out;
}

}  // namespace

ResampleAxis make_resample_axis(int in_size, int out_size) {
  PLM_CHECK(in_size > 0 && out_size > 0) << "resample axis " << in_size << " -> " << out_size;
  const double scale = static_cast<double>(in_size) / out_size;
  const double support = scale >= 1.0 ? 2.0 * scale : 2.0;  // bicubic support 2, widened when downscaling
  const double inv_scale = scale >= 1.0 ? 1.0 / scale : 1.0;
  ResampleAxis axis;
  axis.max_taps = static_cast<int>(std::ceil(support)) * 2 + 1;
  axis.first.resize(out_size);
  axis.count.resize(out_size);
  std::vector<double> weights(static_cast<size_t>(out_size) * axis.max_taps, 0.0);
  double max_weight = 0.0;
  for (int i = 0; i < out_size; ++i) {
    const double center = scale * (i + 0.5);
    // Casts truncate toward zero, as PyTorch's static_cast<int64_t> does.
    const int64_t first = std::max<int64_t>(static_cast<int64_t>(center - support + 0.5), 0);
    const int64_t end = std::min<int64_t>(static_cast<int64_t>(center + support + 0.5), in_size);
    const int count = static_cast<int>(std::clamp<int64_t>(end - first, 0, axis.max_taps));
    double* w = &weights[static_cast<size_t>(i) * axis.max_taps];
    double total = 0.0;
    for (int j = 0; j < count; ++j) {
      w[j] = keys_cubic((static_cast<double>(j + first) - center + 0.5) * inv_scale);
      total += w[j];
    }
    if (total != 0.0) {
      for (int j = 0; j < count; ++j) {
        w[j] /= total;
        max_weight = std::max(max_weight, w[j]);
      }
    }
    axis.first[i] = static_cast<int>(first);
    axis.count[i] = count;
  }
  // The most fractional bits for which the largest weight, doubled, still fits in int16.
  for (axis.precision = 0; axis.precision < kMaxPrecision; ++axis.precision) {
    if (static_cast<int>(0.5 + max_weight * (1 << (axis.precision + 1))) >= kInt16Limit) break;
  }
  axis.weights.resize(weights.size());
  for (size_t k = 0; k < weights.size(); ++k) {
    const double v = weights[k] * (1 << axis.precision);
    axis.weights[k] = static_cast<int16_t>(v < 0 ? static_cast<int>(-0.5 + v) : static_cast<int>(0.5 + v));
  }
  return axis;
}

RgbImage resize_bicubic_antialias(const RgbImage& src, int out_width, int out_height) {
  PLM_CHECK(src.width > 0 && src.height > 0 && out_width > 0 && out_height > 0)
      << "resize " << src.width << "x" << src.height << " -> " << out_width << "x" << out_height;
  if (out_width == src.width && out_height == src.height) return src;
  if (out_width == src.width) return resample_height(src, make_resample_axis(src.height, out_height), out_height);
  RgbImage wide = resample_width(src, make_resample_axis(src.width, out_width), out_width);
  if (out_height == src.height) return wide;
  return resample_height(wide, make_resample_axis(src.height, out_height), out_height);
}

}  // namespace plm::data
