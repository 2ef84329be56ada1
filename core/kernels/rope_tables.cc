// RoPE tables in HF/timm's exact fp32 order. Every intermediate is a float because the references hold
// fp32 tensors; a Python double meeting an fp32 tensor is rounded to fp32 first, as torch does.
#include "core/kernels/rope_tables.h"

#include <cmath>
#include <numbers>

#include "core/check.h"

namespace plm {

namespace {

// 1 / theta^(numerator / denominator): the exponent is an fp32 division, the power is evaluated in double
// and rounded once (what torch's CPU pow returned for the sizes checked in the spec), the reciprocal in fp32.
float inverse_power(double theta, int numerator, int denominator) {
  const float exponent = static_cast<float>(numerator) / static_cast<float>(denominator);
  const float power = static_cast<float>(std::pow(theta, static_cast<double>(exponent)));
  return 1.0f / power;
}

// spec/plm_spec.md §2.7: HF _compute_llama3_parameters, element-wise, in this order.
float llama3_adjust(float f, const Llama3RopeScaling& scaling) {
  const float factor = static_cast<float>(scaling.factor);
  const float lo = static_cast<float>(scaling.low_freq_factor);
  const float hi_minus_lo = static_cast<float>(scaling.high_freq_factor - scaling.low_freq_factor);
  const double context = static_cast<double>(scaling.original_max_position_embeddings);
  const float low_freq_wavelen = static_cast<float>(context / scaling.low_freq_factor);
  const float high_freq_wavelen = static_cast<float>(context / scaling.high_freq_factor);

  const float wavelen = static_cast<float>(2.0 * std::numbers::pi) / f;
  const float adjusted = wavelen > low_freq_wavelen ? f / factor : f;
  const float smooth = (static_cast<float>(context) / wavelen - lo) / hi_minus_lo;
  const float blend = (1.0f - smooth) * adjusted / factor + smooth * adjusted;
  const bool medium = !(wavelen < high_freq_wavelen) && !(wavelen > low_freq_wavelen);
  return medium ? blend : adjusted;
}

}  // namespace

std::vector<float> rope_inv_freq(int head_dim, double theta, const std::optional<Llama3RopeScaling>& scaling) {
  PLM_CHECK(head_dim > 0 && head_dim % 2 == 0) << "rope_inv_freq: head_dim " << head_dim << " must be even";
  if (scaling) {
    PLM_CHECK(scaling->factor > 0 && scaling->high_freq_factor > scaling->low_freq_factor)
        << "rope_inv_freq: llama3 scaling needs factor > 0 and high_freq_factor (" << scaling->high_freq_factor
        << ") > low_freq_factor (" << scaling->low_freq_factor << ")";
  }
  std::vector<float> inv_freq(static_cast<size_t>(head_dim / 2));
  for (int i = 0; i < head_dim / 2; ++i) {
    const float f = inverse_power(theta, 2 * i, head_dim);
    inv_freq[i] = scaling ? llama3_adjust(f, *scaling) : f;
  }
  return inv_freq;
}

VisionRopeTable vision_rope_table(int grid, int head_dim, double theta, float offset, int ref_grid) {
  PLM_CHECK(head_dim > 0 && head_dim % 4 == 0)
      << "vision_rope_table: head_dim " << head_dim << " must be a multiple of 4 (two axes of rotated pairs)";
  PLM_CHECK(grid > 0 && ref_grid > 0) << "vision_rope_table: grid " << grid << ", ref_grid " << ref_grid;
  const int num_bands = head_dim / 4;
  std::vector<float> bands(static_cast<size_t>(num_bands));
  for (int j = 0; j < num_bands; ++j) bands[j] = inverse_power(theta, j, num_bands);

  // timm _build_grid: t = (i + off) / g * r in fp32, divide first.
  std::vector<float> coords(static_cast<size_t>(grid));
  for (int i = 0; i < grid; ++i) {
    coords[i] = (static_cast<float>(i) + offset) / static_cast<float>(grid) * static_cast<float>(ref_grid);
  }

  VisionRopeTable table;
  table.num_patches = grid * grid;
  table.half_dim = head_dim / 2;
  table.cos.resize(static_cast<size_t>(table.num_patches) * table.half_dim);
  table.sin.resize(table.cos.size());
  for (int r = 0; r < grid; ++r) {
    for (int c = 0; c < grid; ++c) {
      const size_t row = (static_cast<size_t>(r) * grid + c) * table.half_dim;
      for (int p = 0; p < table.half_dim; ++p) {
        // 'xy' indexing: the column coordinate comes first.
        const float coord = p < num_bands ? coords[c] : coords[r];
        const float angle = coord * bands[p % num_bands];
        table.cos[row + p] = std::cos(angle);
        table.sin[row + p] = std::sin(angle);
      }
    }
  }
  return table;
}

}  // namespace plm
