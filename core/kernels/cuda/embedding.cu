// Embedding lookup and its gradient on CUDA (vocab-parallel: ids outside this shard give zero rows).
// The backward uses no atomics, for f32 and bf16 tables alike: token indices are sorted by id (CUB radix
// sort, stable), then one thread per (run of equal ids, column) sums the run's dout rows in f32 in token
// order and adds the sum to dtable once. So the result is deterministic and a bf16 table is rounded once
// per element, however often an id repeats (bf16 atomicAdd would round at every add).
#include <cub/device/device_radix_sort.cuh>

#include <algorithm>
#include <limits>

#include "core/buffer.h"
#include "core/kernels/backends.h"
#include "core/kernels/cuda/cuda_common.cuh"

namespace plm::cuda {
namespace {

template <typename T>
struct EmbeddingGather {
  T* out;              // (N, D)
  const int32_t* ids;  // (N)
  const T* table;      // (V, D)
  int64_t vocab_start, vocab_size, dim;
  __device__ void operator()(int64_t i) const {
    const int64_t row = int64_t{ids[i / dim]} - vocab_start;
    out[i] = (row >= 0 && row < vocab_size) ? table[row * dim + i % dim] : from_float<T>(0.0f);
  }
};

struct Iota {
  int32_t* out;
  __device__ void operator()(int64_t i) const { out[i] = static_cast<int32_t>(i); }
};

// Index i = (sorted position p, column d). Only the first position of a run of equal ids does work.
template <typename T>
struct EmbeddingRunSum {
  T* dtable;                     // (V, D)
  const T* dout;                 // (N, D)
  const int32_t* sorted_ids;     // (N)
  const int32_t* sorted_tokens;  // (N): token index of each sorted id, ascending within a run
  int64_t num_tokens, vocab_start, vocab_size, dim;
  __device__ void operator()(int64_t i) const {
    const int64_t first = i / dim;
    const int64_t d = i % dim;
    const int32_t id = sorted_ids[first];
    if (first > 0 && sorted_ids[first - 1] == id) return;
    const int64_t row = int64_t{id} - vocab_start;
    if (row < 0 || row >= vocab_size) return;
    float sum = 0.0f;
    for (int64_t p = first; p < num_tokens && sorted_ids[p] == id; ++p) {
      sum += to_float(dout[int64_t{sorted_tokens[p]} * dim + d]);
    }
    T& slot = dtable[row * dim + d];
    slot = from_float<T>(to_float(slot) + sum);
  }
};

// ids (N) i32 sorted ascending into sorted_ids, with sorted_tokens the original positions (stable).
void sort_ids_with_tokens(int32_t* sorted_ids, int32_t* sorted_tokens, const int32_t* ids, int64_t num_tokens,
                          Device device, Stream s) {
  PLM_CHECK(num_tokens <= std::numeric_limits<int32_t>::max()) << "embedding_backward: " << num_tokens
                                                                << " tokens exceed the sort's index range";
  const int n = static_cast<int>(num_tokens);
  Buffer tokens(static_cast<size_t>(n) * sizeof(int32_t), device);
  int32_t* tokens_data = static_cast<int32_t*>(tokens.data());
  for_each_index(n, Iota{tokens_data}, s);
  constexpr int kEndBit = 32;
  size_t temp_bytes = 0;
  PLM_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, temp_bytes, ids, sorted_ids, tokens_data, sorted_tokens,
                                                 n, 0, kEndBit, as_cuda_stream(s)));
  // A null pointer would turn the second call into another size query.
  Buffer temp(std::max<size_t>(temp_bytes, 1), device);
  PLM_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(temp.data(), temp_bytes, ids, sorted_ids, tokens_data,
                                                 sorted_tokens, n, 0, kEndBit, as_cuda_stream(s)));
}

// ids (N) i32; rows (N, D); table (V, D) of the same float dtype.
void check_embedding_args(const char* op, const Tensor& rows, const Tensor& ids, const Tensor& table) {
  check_cuda_tensors(op, {rows, ids, table});
  check_dtype(op, ids, DType::kI32);
  check_same_dtype(op, rows, table);
  PLM_CHECK(ids.rank() == 1 && rows.rank() == 2 && table.rank() == 2 && rows.size(0) == ids.size(0) &&
            rows.size(1) == table.size(1))
      << op << ": wants rows (N, D), ids (N), table (V, D); got " << rows.describe() << ", " << ids.describe()
      << ", " << table.describe();
}

}  // namespace

void embedding_forward(Tensor out, Tensor ids, Tensor table, int64_t vocab_start, Stream s) {
  check_embedding_args("embedding_forward", out, ids, table);
  dispatch_float(table.dtype(), "embedding_forward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    for_each_index(out.numel(),
                   EmbeddingGather<T>{data_ptr<T>(out), data_ptr<const int32_t>(ids), data_ptr<const T>(table),
                                      vocab_start, table.size(0), table.size(1)},
                   s);
  });
}

void embedding_backward(Tensor dtable, Tensor ids, Tensor dout, int64_t vocab_start, Stream s) {
  check_embedding_args("embedding_backward", dout, ids, dtable);
  const int64_t num_tokens = ids.size(0);
  if (num_tokens == 0 || dtable.numel() == 0) return;
  // Scratch freed on return: safe on one stream (see core/kernels/cuda/column_sum.cuh).
  Buffer sorted_ids(static_cast<size_t>(num_tokens) * sizeof(int32_t), dtable.device());
  Buffer sorted_tokens(static_cast<size_t>(num_tokens) * sizeof(int32_t), dtable.device());
  int32_t* sorted_ids_data = static_cast<int32_t*>(sorted_ids.data());
  int32_t* sorted_tokens_data = static_cast<int32_t*>(sorted_tokens.data());
  sort_ids_with_tokens(sorted_ids_data, sorted_tokens_data, data_ptr<const int32_t>(ids), num_tokens,
                       dtable.device(), s);
  dispatch_float(dtable.dtype(), "embedding_backward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    for_each_index(dout.numel(),
                   EmbeddingRunSum<T>{data_ptr<T>(dtable), data_ptr<const T>(dout), sorted_ids_data,
                                      sorted_tokens_data, num_tokens, vocab_start, dtable.size(0), dtable.size(1)},
                   s);
  });
}

}  // namespace plm::cuda
