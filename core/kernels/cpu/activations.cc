// CPU element-wise activations: exact (erf) GELU and SwiGLU, forward and backward, on the vector kernels of
// vector_kernels.h in chunks across threads. Every output may alias an input (each element's inputs are read
// before its outputs are written).
#include <algorithm>

#include "core/kernels/backends.h"
#include "core/kernels/cpu/checks.h"
#include "core/kernels/cpu/parallel.h"
#include "core/kernels/cpu/vector_kernels.h"

namespace plm::cpu {

namespace {

// Elements per task.
constexpr int64_t kChunk = 4096;

}  // namespace

void gelu_forward(Tensor y, Tensor x, Stream) {
  check_tensor("gelu_forward", "x", x, DType::kF32);
  check_f32("gelu_forward", "y", y, x.shape());
  const float* x_data = x.data_as<float>();
  float* y_data = y.data_as<float>();
  const auto gelu = vector_kernels(best_simd_isa()).gelu;
  const int64_t n = x.numel();
#pragma omp parallel for if (n >= kMinParallelWork)
  for (int64_t i = 0; i < n; i += kChunk) gelu(x_data + i, y_data + i, std::min(kChunk, n - i));
}

void gelu_backward(Tensor dx, Tensor dy, Tensor x, Stream) {
  check_tensor("gelu_backward", "x", x, DType::kF32);
  check_f32("gelu_backward", "dx", dx, x.shape());
  check_f32("gelu_backward", "dy", dy, x.shape());
  const float* x_data = x.data_as<float>();
  const float* dy_data = dy.data_as<float>();
  float* dx_data = dx.data_as<float>();
  const auto gelu_backward = vector_kernels(best_simd_isa()).gelu_backward;
  const int64_t n = x.numel();
#pragma omp parallel for if (n >= kMinParallelWork)
  for (int64_t i = 0; i < n; i += kChunk) gelu_backward(x_data + i, dy_data + i, dx_data + i, std::min(kChunk, n - i));
}

void swiglu_forward(Tensor out, Tensor gate, Tensor up, Stream) {
  check_tensor("swiglu_forward", "gate", gate, DType::kF32);
  check_f32("swiglu_forward", "up", up, gate.shape());
  check_f32("swiglu_forward", "out", out, gate.shape());
  const float* gate_data = gate.data_as<float>();
  const float* up_data = up.data_as<float>();
  float* out_data = out.data_as<float>();
  const auto swiglu = vector_kernels(best_simd_isa()).swiglu;
  const int64_t n = gate.numel();
#pragma omp parallel for if (n >= kMinParallelWork)
  for (int64_t i = 0; i < n; i += kChunk) swiglu(gate_data + i, up_data + i, out_data + i, std::min(kChunk, n - i));
}

void swiglu_backward(Tensor dgate, Tensor dup, Tensor dout, Tensor gate, Tensor up, Stream) {
  check_tensor("swiglu_backward", "gate", gate, DType::kF32);
  check_f32("swiglu_backward", "up", up, gate.shape());
  check_f32("swiglu_backward", "dout", dout, gate.shape());
  check_f32("swiglu_backward", "dgate", dgate, gate.shape());
  check_f32("swiglu_backward", "dup", dup, gate.shape());
  const float* gate_data = gate.data_as<float>();
  const float* up_data = up.data_as<float>();
  const float* dout_data = dout.data_as<float>();
  float* dgate_data = dgate.data_as<float>();
  float* dup_data = dup.data_as<float>();
  const auto swiglu_backward = vector_kernels(best_simd_isa()).swiglu_backward;
  const int64_t n = gate.numel();
#pragma omp parallel for if (n >= kMinParallelWork)
  for (int64_t i = 0; i < n; i += kChunk) {
    swiglu_backward(gate_data + i, up_data + i, dout_data + i, dgate_data + i, dup_data + i, std::min(kChunk, n - i));
  }
}

}  // namespace plm::cpu
