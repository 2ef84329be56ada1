// Element-wise ops on CUDA (add, mul, divide, scale, mul_rowwise, fill, cast): one thread per element, f32 math,
// rounded once on store (a bf16 add or product rounds like torch's). In place is allowed everywhere.
#include "core/kernels/backends.h"
#include "core/kernels/cuda/cuda_common.cuh"

namespace plm::cuda {
namespace {

struct Plus {
  __device__ float operator()(float a, float b) const { return a + b; }
};
struct Times {
  __device__ float operator()(float a, float b) const { return a * b; }
};
struct Over {
  __device__ float operator()(float a, float b) const { return a / b; }
};

template <typename T, typename Op>
struct BinaryMap {
  T* out;
  const T* a;
  const T* b;
  __device__ void operator()(int64_t i) const { out[i] = from_float<T>(Op{}(to_float(a[i]), to_float(b[i]))); }
};

template <typename T>
struct Scale {
  T* out;
  const T* x;
  float alpha;
  __device__ void operator()(int64_t i) const { out[i] = from_float<T>(alpha * to_float(x[i])); }
};

// out (N, D) = x (N, D) * w (D) per row.
template <typename T>
struct MulRowwise {
  T* out;
  const T* x;
  const T* w;
  int64_t dim;
  __device__ void operator()(int64_t i) const { out[i] = from_float<T>(to_float(x[i]) * to_float(w[i % dim])); }
};

template <typename T>
struct Fill {
  T* out;
  float value;
  __device__ void operator()(int64_t i) const { out[i] = from_float<T>(value); }
};

// Widening to f32 is exact for every source type, so converting through f32 rounds once.
template <typename To, typename From>
struct Cast {
  To* out;
  const From* x;
  __device__ void operator()(int64_t i) const { out[i] = from_float<To>(to_float(x[i])); }
};

template <typename Op>
void binary(const char* op, Tensor out, Tensor a, Tensor b, Stream s) {
  check_elementwise_tensors(op, {out, a, b});
  dispatch_float(a.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    for_each_index(out.numel(), BinaryMap<T, Op>{data_ptr<T>(out), data_ptr<const T>(a), data_ptr<const T>(b)}, s);
  });
}

}  // namespace

void add(Tensor out, Tensor a, Tensor b, Stream s) { binary<Plus>("add", out, a, b, s); }

void mul(Tensor out, Tensor a, Tensor b, Stream s) { binary<Times>("mul", out, a, b, s); }

void divide(Tensor out, Tensor a, Tensor b, Stream s) { binary<Over>("divide", out, a, b, s); }

void scale(Tensor out, Tensor x, float alpha, Stream s) {
  check_elementwise_tensors("scale", {out, x});
  dispatch_float(x.dtype(), "scale", [&](auto tag) {
    using T = typename decltype(tag)::type;
    for_each_index(out.numel(), Scale<T>{data_ptr<T>(out), data_ptr<const T>(x), alpha}, s);
  });
}

void mul_rowwise(Tensor out, Tensor x, Tensor w, Stream s) {
  const char* op = "mul_rowwise";
  check_elementwise_tensors(op, {out, x});
  check_cuda_tensors(op, {w});
  check_same_dtype(op, w, x);
  PLM_CHECK(x.rank() >= 1 && w.rank() == 1 && w.size(0) == x.size(-1))
      << op << ": wants x (..., D) and w (D); got " << x.describe() << ", " << w.describe();
  dispatch_float(x.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    for_each_index(out.numel(), MulRowwise<T>{data_ptr<T>(out), data_ptr<const T>(x), data_ptr<const T>(w), w.size(0)},
                   s);
  });
}

void fill(Tensor out, float value, Stream s) {
  check_cuda_tensors("fill", {out});
  dispatch_float(out.dtype(), "fill", [&](auto tag) {
    using T = typename decltype(tag)::type;
    for_each_index(out.numel(), Fill<T>{data_ptr<T>(out), value}, s);
  });
}

void cast(Tensor out, Tensor x, Stream s) {
  check_cuda_tensors("cast", {out, x});
  check_same_shape("cast", out, x);
  dispatch_float</*kWithHalf=*/true>(out.dtype(), "cast", [&](auto out_tag) {
    using To = typename decltype(out_tag)::type;
    dispatch_float</*kWithHalf=*/true>(x.dtype(), "cast", [&](auto in_tag) {
      using From = typename decltype(in_tag)::type;
      for_each_index(out.numel(), Cast<To, From>{data_ptr<To>(out), data_ptr<const From>(x)}, s);
    });
  });
}

}  // namespace plm::cuda
