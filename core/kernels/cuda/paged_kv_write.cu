// paged_kv_write on CUDA: one thread per element of the new k and v rows, each copied to its cache slot.
#include "core/kernels/backends.h"
#include "core/kernels/cuda/cuda_common.cuh"

namespace plm::cuda {
namespace {

template <typename T>
struct SlotCopy {
  T* k_cache;            // (num_blocks * block_size, row)
  T* v_cache;            // (num_blocks * block_size, row)
  const T* k;            // (tokens, row)
  const T* v;            // (tokens, row)
  const int32_t* slots;  // (tokens)
  int64_t row;           // Hkv * Dh
  __device__ void operator()(int64_t i) const {
    const int64_t slot = slots[i / row], d = i % row;
    k_cache[slot * row + d] = k[i];
    v_cache[slot * row + d] = v[i];
  }
};

}  // namespace

void paged_kv_write(Tensor k_cache, Tensor v_cache, Tensor k, Tensor v, Tensor slots, Stream s) {
  constexpr const char* kOp = "paged_kv_write";
  check_cuda_tensors(kOp, {k_cache, v_cache, k, v, slots});
  check_dtype(kOp, slots, DType::kI32);
  check_same_shape(kOp, k_cache, v_cache);
  check_same_shape(kOp, k, v);
  for (const Tensor& t : {v_cache, k, v}) check_same_dtype(kOp, t, k_cache);
  PLM_CHECK(k_cache.rank() == 4 && k.rank() == 3 && k.size(1) == k_cache.size(2) && k.size(2) == k_cache.size(3) &&
            slots.rank() == 1 && slots.size(0) == k.size(0))
      << kOp << ": wants caches (num_blocks, block_size, Hkv, Dh), k and v (T, Hkv, Dh), slots (T); got "
      << k_cache.describe() << ", " << k.describe() << ", " << slots.describe();
  dispatch_float(k.dtype(), kOp, [&](auto tag) {
    using T = typename decltype(tag)::type;
    for_each_index(k.numel(),
                   SlotCopy<T>{data_ptr<T>(k_cache), data_ptr<T>(v_cache), data_ptr<const T>(k), data_ptr<const T>(v),
                               data_ptr<const int32_t>(slots), k.size(1) * k.size(2)},
                   s);
  });
}

}  // namespace plm::cuda
