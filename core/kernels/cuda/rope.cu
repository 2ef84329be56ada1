// Rotary position embeddings on CUDA: text (Llama, half split) and vision (PE, interleaved pairs). One
// thread per rotated pair, so in place (y == x) is safe. The backward is the rotation by -angle: the same
// kernel with sin negated. Text bf16 mirrors HF's rounding points (spec/plm_spec.md §6): cos and sin
// rounded to bf16, then each product and the sum; the angle is the f32 product float(pos) * inv_freq and
// sincosf is the precise (non-fast-math) one. Vision uses the f32 table and rounds once (§2.3).
#include "core/kernels/backends.h"
#include "core/kernels/cuda/cuda_common.cuh"

namespace plm::cuda {
namespace {

// Index i = (token n, head h, k) over (N, H, Dh/2); rotates x[n, h, k] with x[n, h, k + Dh/2].
template <typename T>
struct TextRope {
  T* y;                      // (N, H, Dh)
  const T* x;                // (N, H, Dh)
  const int32_t* positions;  // (N)
  const float* inv_freq;     // (Dh/2)
  int64_t num_heads, half_dim;
  float sin_sign;  // +1 forward, -1 backward
  __device__ void operator()(int64_t i) const {
    const int64_t k = i % half_dim;
    const int64_t token = i / (half_dim * num_heads);
    const int64_t first = 2 * (i - k) + k;  // (n * H + h) * Dh + k
    float s, c;
    sincosf(static_cast<float>(positions[token]) * inv_freq[k], &s, &c);
    c = round_to<T>(c);
    s = sin_sign * round_to<T>(s);
    const float x1 = to_float(x[first]);
    const float x2 = to_float(x[first + half_dim]);
    y[first] = from_float<T>(round_to<T>(x1 * c) - round_to<T>(x2 * s));
    y[first + half_dim] = from_float<T>(round_to<T>(x2 * c) + round_to<T>(x1 * s));
  }
};

// Index i = (b, t, h, p) over (B, S, H, Dh/2); rotates the pair x[b, t, h, 2p], x[b, t, h, 2p + 1].
template <typename T>
struct VisionRope {
  T* y;                    // (B, S, H, Dh)
  const T* x;              // (B, S, H, Dh)
  const float* cos_table;  // (S - num_prefix, Dh/2)
  const float* sin_table;  // (S - num_prefix, Dh/2)
  int64_t seq_len, num_heads, half_dim, num_prefix;
  float sin_sign;  // +1 forward, -1 backward
  __device__ void operator()(int64_t i) const {
    const int64_t p = i % half_dim;
    const int64_t t = (i / (half_dim * num_heads)) % seq_len;
    const int64_t even = 2 * i;
    const T x0 = x[even];
    const T x1 = x[even + 1];
    if (t < num_prefix) {  // prefix (CLS) tokens pass through unrotated
      y[even] = x0;
      y[even + 1] = x1;
      return;
    }
    const int64_t table = (t - num_prefix) * half_dim + p;
    const float c = cos_table[table];
    const float s = sin_sign * sin_table[table];
    y[even] = from_float<T>(to_float(x0) * c - to_float(x1) * s);
    y[even + 1] = from_float<T>(to_float(x1) * c + to_float(x0) * s);
  }
};

void text_rope(const char* op, Tensor y, Tensor x, Tensor positions, Tensor inv_freq, float sin_sign, Stream s) {
  check_cuda_tensors(op, {y, x, positions, inv_freq});
  check_same_shape(op, y, x);
  check_same_dtype(op, y, x);
  check_dtype(op, positions, DType::kI32);
  check_dtype(op, inv_freq, DType::kF32);
  PLM_CHECK(x.rank() == 3 && x.size(2) % 2 == 0 && positions.rank() == 1 && positions.size(0) == x.size(0) &&
            inv_freq.numel() == x.size(2) / 2)
      << op << ": wants x (N, H, Dh) with Dh even, positions (N), inv_freq (Dh/2); got " << x.describe() << ", "
      << positions.describe() << ", " << inv_freq.describe();
  dispatch_float(x.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    for_each_index(x.numel() / 2,
                   TextRope<T>{data_ptr<T>(y), data_ptr<const T>(x), data_ptr<const int32_t>(positions),
                               data_ptr<const float>(inv_freq), x.size(1), x.size(2) / 2, sin_sign},
                   s);
  });
}

void vision_rope(const char* op, Tensor y, Tensor x, Tensor cos, Tensor sin, int num_prefix_tokens,
                 float sin_sign, Stream s) {
  check_cuda_tensors(op, {y, x, cos, sin});
  check_same_shape(op, y, x);
  check_same_dtype(op, y, x);
  check_dtype(op, cos, DType::kF32);
  check_dtype(op, sin, DType::kF32);
  check_same_shape(op, cos, sin);
  PLM_CHECK(x.rank() == 4 && x.size(3) % 2 == 0 && num_prefix_tokens >= 0 && num_prefix_tokens <= x.size(1) &&
            cos.rank() == 2 && cos.size(0) == x.size(1) - num_prefix_tokens && cos.size(1) == x.size(3) / 2)
      << op << ": wants x (B, S, H, Dh) with Dh even and cos, sin (S - num_prefix, Dh/2); got " << x.describe()
      << ", " << cos.describe() << ", num_prefix " << num_prefix_tokens;
  dispatch_float(x.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    for_each_index(x.numel() / 2,
                   VisionRope<T>{data_ptr<T>(y), data_ptr<const T>(x), data_ptr<const float>(cos),
                                 data_ptr<const float>(sin), x.size(1), x.size(2), x.size(3) / 2, num_prefix_tokens,
                                 sin_sign},
                   s);
  });
}

}  // namespace

void rope_forward(Tensor y, Tensor x, Tensor positions, Tensor inv_freq, Stream s) {
  text_rope("rope_forward", y, x, positions, inv_freq, 1.0f, s);
}

void rope_backward(Tensor dx, Tensor dy, Tensor positions, Tensor inv_freq, Stream s) {
  text_rope("rope_backward", dx, dy, positions, inv_freq, -1.0f, s);
}

void vision_rope_forward(Tensor y, Tensor x, Tensor cos, Tensor sin, int num_prefix_tokens, Stream s) {
  vision_rope("vision_rope_forward", y, x, cos, sin, num_prefix_tokens, 1.0f, s);
}

void vision_rope_backward(Tensor dx, Tensor dy, Tensor cos, Tensor sin, int num_prefix_tokens, Stream s) {
  vision_rope("vision_rope_backward", dx, dy, cos, sin, num_prefix_tokens, -1.0f, s);
}

}  // namespace plm::cuda
