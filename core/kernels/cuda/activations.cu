// SwiGLU and exact (erf) GELU on CUDA, element-wise in f32. In place is allowed: each index reads all its
// inputs before writing. bf16 SwiGLU mirrors HF (spec/plm_spec.md §6): silu(gate) is rounded before the
// product with up, and dup uses that rounded value, as HF autograd does.
#include "core/kernels/backends.h"
#include "core/kernels/cuda/cuda_common.cuh"

namespace plm::cuda {
namespace {

constexpr float kInvSqrt2 = 0.70710678118654752440f;    // 1 / sqrt(2)
constexpr float kInvSqrt2Pi = 0.39894228040143267794f;  // 1 / sqrt(2 pi)

__device__ float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

template <typename T>
struct SwigluForward {
  T* out;
  const T* gate;
  const T* up;
  __device__ void operator()(int64_t i) const {
    const float g = to_float(gate[i]);
    out[i] = from_float<T>(round_to<T>(g * sigmoid(g)) * to_float(up[i]));
  }
};

// d silu(g) / dg = sig * (1 + g * (1 - sig)).
template <typename T>
struct SwigluBackward {
  T* dgate;
  T* dup;
  const T* dout;
  const T* gate;
  const T* up;
  __device__ void operator()(int64_t i) const {
    const float g = to_float(gate[i]);
    const float u = to_float(up[i]);
    const float dy = to_float(dout[i]);
    const float sig = sigmoid(g);
    dgate[i] = from_float<T>(dy * u * sig * (1.0f + g * (1.0f - sig)));
    dup[i] = from_float<T>(dy * round_to<T>(g * sig));
  }
};

template <typename T>
struct GeluForward {
  T* y;
  const T* x;
  __device__ void operator()(int64_t i) const {
    const float v = to_float(x[i]);
    y[i] = from_float<T>(0.5f * v * (1.0f + erff(v * kInvSqrt2)));
  }
};

// d gelu(x) / dx = Phi(x) + x * phi(x).
template <typename T>
struct GeluBackward {
  T* dx;
  const T* dy;
  const T* x;
  __device__ void operator()(int64_t i) const {
    const float v = to_float(x[i]);
    const float cdf = 0.5f * (1.0f + erff(v * kInvSqrt2));
    const float pdf = kInvSqrt2Pi * expf(-0.5f * v * v);
    dx[i] = from_float<T>(to_float(dy[i]) * (cdf + v * pdf));
  }
};

}  // namespace

void swiglu_forward(Tensor out, Tensor gate, Tensor up, Stream s) {
  check_elementwise_tensors("swiglu_forward", {out, gate, up});
  dispatch_float(gate.dtype(), "swiglu_forward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    for_each_index(out.numel(), SwigluForward<T>{data_ptr<T>(out), data_ptr<const T>(gate), data_ptr<const T>(up)},
                   s);
  });
}

void swiglu_backward(Tensor dgate, Tensor dup, Tensor dout, Tensor gate, Tensor up, Stream s) {
  check_elementwise_tensors("swiglu_backward", {dgate, dup, dout, gate, up});
  dispatch_float(gate.dtype(), "swiglu_backward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    for_each_index(gate.numel(),
                   SwigluBackward<T>{data_ptr<T>(dgate), data_ptr<T>(dup), data_ptr<const T>(dout),
                                     data_ptr<const T>(gate), data_ptr<const T>(up)},
                   s);
  });
}

void gelu_forward(Tensor y, Tensor x, Stream s) {
  check_elementwise_tensors("gelu_forward", {y, x});
  dispatch_float(x.dtype(), "gelu_forward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    for_each_index(x.numel(), GeluForward<T>{data_ptr<T>(y), data_ptr<const T>(x)}, s);
  });
}

void gelu_backward(Tensor dx, Tensor dy, Tensor x, Stream s) {
  check_elementwise_tensors("gelu_backward", {dx, dy, x});
  dispatch_float(x.dtype(), "gelu_backward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    for_each_index(x.numel(), GeluBackward<T>{data_ptr<T>(dx), data_ptr<const T>(dy), data_ptr<const T>(x)}, s);
  });
}

}  // namespace plm::cuda
