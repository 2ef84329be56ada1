// CPU element-wise ops in f32 (add, mul, divide, scale, mul_rowwise, fill) and cast between f32, bf16 and f16
// (round to nearest even, via core/dtype.h). Outputs may alias inputs.
#include <algorithm>

#include "core/kernels/backends.h"
#include "core/kernels/cpu/checks.h"
#include "core/kernels/cpu/parallel.h"

namespace plm::cpu {

namespace {

// out[i] = fn(a[i], b[i]) over three f32 tensors of one shape.
template <typename Fn>
void binary_op(const char* op, Tensor out, Tensor a, Tensor b, const Fn& fn) {
  check_tensor(op, "a", a, DType::kF32);
  check_f32(op, "b", b, a.shape());
  check_f32(op, "out", out, a.shape());
  const float* a_data = a.data_as<float>();
  const float* b_data = b.data_as<float>();
  float* out_data = out.data_as<float>();
#pragma omp parallel for if (a.numel() >= kMinParallelWork)
  for (int64_t i = 0; i < a.numel(); ++i) out_data[i] = fn(a_data[i], b_data[i]);
}

// Calls fn with a value of the storage type of float dtype `t` (float, bf16 or f16).
template <typename Fn>
void visit_float_dtype(const char* op, const Tensor& t, const Fn& fn) {
  switch (t.dtype()) {
    case DType::kF32: fn(float{}); return;
    case DType::kBF16: fn(bf16{}); return;
    case DType::kF16: fn(f16{}); return;
    case DType::kI32:
    case DType::kI64:
    case DType::kU8: break;
  }
  PLM_CHECK(false) << op << ": wants f32, bf16 or f16, got " << t.describe();
}

}  // namespace

void add(Tensor out, Tensor a, Tensor b, Stream) {
  binary_op("add", out, a, b, [](float x, float y) { return x + y; });
}

void mul(Tensor out, Tensor a, Tensor b, Stream) {
  binary_op("mul", out, a, b, [](float x, float y) { return x * y; });
}

void divide(Tensor out, Tensor a, Tensor b, Stream) {
  binary_op("divide", out, a, b, [](float x, float y) { return x / y; });
}

void scale(Tensor out, Tensor x, float alpha, Stream) {
  check_tensor("scale", "x", x, DType::kF32);
  check_f32("scale", "out", out, x.shape());
  const float* x_data = x.data_as<float>();
  float* out_data = out.data_as<float>();
#pragma omp parallel for if (x.numel() >= kMinParallelWork)
  for (int64_t i = 0; i < x.numel(); ++i) out_data[i] = alpha * x_data[i];
}

void mul_rowwise(Tensor out, Tensor x, Tensor w, Stream) {
  check_tensor("mul_rowwise", "x", x, DType::kF32);
  check_rank("mul_rowwise", "x", x, 2);
  const int64_t num_rows = x.size(0), dim = x.size(1);
  check_f32("mul_rowwise", "w", w, Shape{dim});
  check_f32("mul_rowwise", "out", out, x.shape());
  const float* x_data = x.data_as<float>();
  const float* w_data = w.data_as<float>();
  float* out_data = out.data_as<float>();
#pragma omp parallel for if (x.numel() >= kMinParallelWork)
  for (int64_t n = 0; n < num_rows; ++n) {
    for (int64_t d = 0; d < dim; ++d) out_data[n * dim + d] = x_data[n * dim + d] * w_data[d];
  }
}

void fill(Tensor out, float value, Stream) {
  check_tensor("fill", "out", out, DType::kF32);
  std::fill_n(out.data_as<float>(), out.numel(), value);
}

void cast(Tensor out, Tensor x, Stream) {
  PLM_CHECK(out.shape() == x.shape()) << "cast: out " << out.describe() << " vs x " << x.describe();
  check_tensor("cast", "x", x, x.dtype());
  check_tensor("cast", "out", out, out.dtype());
  // Every conversion goes through float: widening is exact, so narrowing rounds once (RNE).
  visit_float_dtype("cast", x, [&](auto in_value) {
    visit_float_dtype("cast", out, [&](auto out_value) {
      using In = decltype(in_value);
      using Out = decltype(out_value);
      const In* src = x.data_as<In>();
      Out* dst = out.data_as<Out>();
#pragma omp parallel for if (x.numel() >= kMinParallelWork)
      for (int64_t i = 0; i < x.numel(); ++i) dst[i] = static_cast<Out>(static_cast<float>(src[i]));
    });
  });
}

}  // namespace plm::cpu
