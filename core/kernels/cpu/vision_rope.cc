// CPU vision RoPE (PE 2-D RoPE, interleaved pairs, spec/plm_spec.md §2.3). The first num_prefix_tokens
// tokens (CLS) are copied unrotated. The backward is the rotation by the negated angle; y may alias x.
#include <algorithm>

#include "core/kernels/backends.h"
#include "core/kernels/cpu/checks.h"
#include "core/kernels/cpu/parallel.h"

namespace plm::cpu {

namespace {

// y = rotate(x, sign * angle). x, y: (B, S, H, Dh); cos, sin: (S - num_prefix_tokens, Dh / 2).
void rotate_interleaved(const char* op, Tensor y, Tensor x, Tensor cos, Tensor sin, int num_prefix_tokens, float sign) {
  check_tensor(op, "x", x, DType::kF32);
  PLM_CHECK(x.rank() == 4 && x.size(3) % 2 == 0) << op << ": x must be (B, S, H, even Dh), got " << x.describe();
  const int64_t batch = x.size(0), seq = x.size(1), num_heads = x.size(2), head_dim = x.size(3);
  const int64_t half = head_dim / 2;
  PLM_CHECK(0 <= num_prefix_tokens && num_prefix_tokens <= seq)
      << op << ": num_prefix_tokens " << num_prefix_tokens << " outside [0, S = " << seq << "]";
  check_f32(op, "y", y, x.shape());
  check_f32(op, "cos", cos, {seq - num_prefix_tokens, half});
  check_f32(op, "sin", sin, {seq - num_prefix_tokens, half});

  const float* in = x.data_as<float>();
  float* out = y.data_as<float>();
  const float* cos_table = cos.data_as<float>();
  const float* sin_table = sin.data_as<float>();
  const int64_t token_size = num_heads * head_dim;
#pragma omp parallel for if (x.numel() >= kMinParallelWork)
  for (int64_t bt = 0; bt < batch * seq; ++bt) {
    const int64_t t = bt % seq;
    const float* token_in = in + bt * token_size;
    float* token_out = out + bt * token_size;
    if (t < num_prefix_tokens) {
      if (token_out != token_in) std::copy(token_in, token_in + token_size, token_out);
      continue;
    }
    const float* c = cos_table + (t - num_prefix_tokens) * half;
    const float* s = sin_table + (t - num_prefix_tokens) * half;
    for (int64_t h = 0; h < num_heads; ++h) {
      for (int64_t p = 0; p < half; ++p) {
        const int64_t even = h * head_dim + 2 * p;
        // Read the pair before writing it: y may alias x.
        const float first = token_in[even], second = token_in[even + 1];
        const float sin_angle = sign * s[p];
        token_out[even] = first * c[p] - second * sin_angle;
        token_out[even + 1] = second * c[p] + first * sin_angle;
      }
    }
  }
}

}  // namespace

void vision_rope_forward(Tensor y, Tensor x, Tensor cos, Tensor sin, int num_prefix_tokens, Stream) {
  rotate_interleaved("vision_rope_forward", y, x, cos, sin, num_prefix_tokens, 1.0f);
}

void vision_rope_backward(Tensor dx, Tensor dy, Tensor cos, Tensor sin, int num_prefix_tokens, Stream) {
  rotate_interleaved("vision_rope_backward", dx, dy, cos, sin, num_prefix_tokens, -1.0f);
}

}  // namespace plm::cpu
