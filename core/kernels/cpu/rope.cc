// CPU text RoPE (Llama half-split layout, spec/plm_spec.md §2.7). Angles are fp32: float(position) *
// inv_freq, cos/sin in fp32. The backward is the same rotation by the negated angle; y may alias x.
#include <cmath>
#include <vector>

#include "core/kernels/backends.h"
#include "core/kernels/cpu/checks.h"
#include "core/kernels/cpu/parallel.h"

namespace plm::cpu {

namespace {

// y = rotate(x, sign * angle) for every token and head. x, y: (N, H, Dh).
void rotate_half_split(const char* op, Tensor y, Tensor x, Tensor positions, Tensor inv_freq, float sign) {
  check_tensor(op, "x", x, DType::kF32);
  PLM_CHECK(x.rank() == 3 && x.size(2) % 2 == 0) << op << ": x must be (N, H, even Dh), got " << x.describe();
  const int64_t num_tokens = x.size(0), num_heads = x.size(1), head_dim = x.size(2), half = head_dim / 2;
  check_f32(op, "y", y, x.shape());
  check_tensor(op, "positions", positions, DType::kI32);
  check_shape(op, "positions", positions, {num_tokens});
  check_f32(op, "inv_freq", inv_freq, {half});

  const float* in = x.data_as<float>();
  float* out = y.data_as<float>();
  const int32_t* pos = positions.data_as<int32_t>();
  const float* freq = inv_freq.data_as<float>();
#pragma omp parallel if (x.numel() >= kMinParallelWork)
  {
    std::vector<float> cos_angle(static_cast<size_t>(half)), sin_angle(static_cast<size_t>(half));
#pragma omp for
    for (int64_t n = 0; n < num_tokens; ++n) {
      for (int64_t i = 0; i < half; ++i) {
        const float angle = static_cast<float>(pos[n]) * freq[i];
        cos_angle[i] = std::cos(angle);
        sin_angle[i] = sign * std::sin(angle);
      }
      for (int64_t h = 0; h < num_heads; ++h) {
        const int64_t base = (n * num_heads + h) * head_dim;
        for (int64_t i = 0; i < half; ++i) {
          // Read both halves before writing either: y may alias x.
          const float first = in[base + i], second = in[base + i + half];
          out[base + i] = first * cos_angle[i] - second * sin_angle[i];
          out[base + i + half] = second * cos_angle[i] + first * sin_angle[i];
        }
      }
    }
  }
}

}  // namespace

void rope_forward(Tensor y, Tensor x, Tensor positions, Tensor inv_freq, Stream) {
  rotate_half_split("rope_forward", y, x, positions, inv_freq, 1.0f);
}

void rope_backward(Tensor dx, Tensor dy, Tensor positions, Tensor inv_freq, Stream) {
  rotate_half_split("rope_backward", dx, dy, positions, inv_freq, -1.0f);
}

}  // namespace plm::cpu
