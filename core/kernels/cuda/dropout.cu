// Inverted dropout on CUDA with the counter-based masks of core/kernels/counter_random.h: the same mask as
// the CPU oracle bit for bit (integer hashing); kept values are x * (1 / (1 - p)) in f32, rounded once.
#include "core/kernels/backends.h"
#include "core/kernels/counter_random.h"
#include "core/kernels/cuda/cuda_common.cuh"

namespace plm::cuda {
namespace {

template <typename T>
struct Dropout {
  T* y;
  const T* x;
  const int64_t* row_keys;
  uint64_t salt;
  float p;
  float keep_scale;
  int64_t dim;
  __device__ void operator()(int64_t i) const {
    const int64_t row = i / dim, col = i % dim;
    const bool keep = dropout_keeps(static_cast<uint64_t>(row_keys[row]), salt, col, p);
    y[i] = from_float<T>(keep ? to_float(x[i]) * keep_scale : 0.0f);
  }
};

}  // namespace

void dropout_forward(Tensor y, Tensor x, Tensor row_keys, uint64_t salt, float p, Stream s) {
  const char* op = "dropout_forward";
  check_elementwise_tensors(op, {y, x});
  check_cuda_tensors(op, {row_keys});
  check_dtype(op, row_keys, DType::kI64);
  PLM_CHECK(x.rank() == 2 && row_keys.rank() == 1 && row_keys.size(0) == x.size(0))
      << op << ": wants x (N, D) and row_keys (N); got " << x.describe() << ", " << row_keys.describe();
  PLM_CHECK(p >= 0.0f && p < 1.0f) << op << ": probability " << p << " outside [0, 1)";
  if (x.size(1) == 0) return;
  dispatch_float(x.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    for_each_index(x.numel(),
                   Dropout<T>{data_ptr<T>(y), data_ptr<const T>(x), data_ptr<const int64_t>(row_keys), salt, p,
                              1.0f / (1.0f - p), x.size(1)},
                   s);
  });
}

}  // namespace plm::cuda
