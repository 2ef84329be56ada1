// Host-side RoPE tables: the text inverse frequencies (Llama, optionally llama3-scaled) and the vision
// cos/sin table (PE 2-D RoPE). Both reproduce HF/timm's fp32 arithmetic step by step
// (spec/plm_spec.md §2.3, §2.7), so the rounding points matter more than the formulas.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

namespace plm {

// HF rope_scaling of type "llama3".
struct Llama3RopeScaling {
  double factor;
  double low_freq_factor;
  double high_freq_factor;
  int64_t original_max_position_embeddings;
};

// (head_dim / 2) inverse frequencies f_i = 1 / theta^(2i / head_dim), llama3-adjusted when `scaling` is set.
std::vector<float> rope_inv_freq(int head_dim, double theta, const std::optional<Llama3RopeScaling>& scaling);

// cos, sin: (num_patches = grid * grid, half_dim = head_dim / 2), rows in row-major (r * grid + c) order.
// Pairs [0, head_dim / 4) rotate by the column (x) angle, pairs [head_dim / 4, head_dim / 2) by the row (y).
struct VisionRopeTable {
  std::vector<float> cos, sin;
  int num_patches;
  int half_dim;
};

// offset: added to the patch index (1 with a CLS token, 0 without); ref_grid: timm's ref_feat_shape.
VisionRopeTable vision_rope_table(int grid, int head_dim, double theta, float offset, int ref_grid);

}  // namespace plm
