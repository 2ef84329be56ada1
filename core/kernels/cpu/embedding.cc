// CPU embedding lookup and its gradient over one vocab shard [vocab_start, vocab_start + V): ids outside
// the shard give zero rows forward and no gradient (another rank owns them). The forward also reads a bf16
// table (inference weights kept bf16), widening its rows exactly into the f32 output.
#include <algorithm>
#include <cstring>
#include <type_traits>

#include "core/kernels/backends.h"
#include "core/kernels/cpu/checks.h"
#include "core/kernels/cpu/parallel.h"

namespace plm::cpu {

namespace {

// Checks the shapes shared by forward and backward: ids (N), table-like (V, D), rows (N, D).
void check_embedding(const char* op, const Tensor& rows, const Tensor& ids, const Tensor& table) {
  check_tensor(op, "ids", ids, DType::kI32);
  check_rank(op, "ids", ids, 1);
  check_rank(op, "table", table, 2);
  check_shape(op, "rows", rows, Shape{ids.size(0), table.size(1)});
}

// out[i] = table row ids[i] - vocab_start as f32, or zeros outside [0, vocab).
template <typename T>
void gather_rows(const Tensor& out, const Tensor& ids, const T* table, int64_t vocab, int64_t vocab_start) {
  const int64_t num_ids = ids.size(0), dim = out.size(1);
  const int32_t* id_data = ids.data_as<int32_t>();
  float* out_data = out.data_as<float>();
#pragma omp parallel for if (out.numel() >= kMinParallelWork)
  for (int64_t i = 0; i < num_ids; ++i) {
    const int64_t row = id_data[i] - vocab_start;
    float* dst = out_data + i * dim;
    if (row < 0 || row >= vocab) {
      std::fill(dst, dst + dim, 0.0f);
    } else if constexpr (std::is_same_v<T, float>) {
      std::memcpy(dst, table + row * dim, static_cast<size_t>(dim) * sizeof(float));
    } else {
      for (int64_t d = 0; d < dim; ++d) dst[d] = static_cast<float>(table[row * dim + d]);
    }
  }
}

}  // namespace

void embedding_forward(Tensor out, Tensor ids, Tensor table, int64_t vocab_start, Stream) {
  check_tensor("embedding_forward", "out", out, DType::kF32);
  PLM_CHECK(table.defined() && (table.dtype() == DType::kF32 || table.dtype() == DType::kBF16))
      << "embedding_forward: table must be f32 or bf16, got " << table.describe();
  check_tensor("embedding_forward", "table", table, table.dtype());
  check_embedding("embedding_forward", out, ids, table);
  if (table.dtype() == DType::kBF16) {
    gather_rows(out, ids, table.data_as<bf16>(), table.size(0), vocab_start);
  } else {
    gather_rows(out, ids, table.data_as<float>(), table.size(0), vocab_start);
  }
}

void embedding_backward(Tensor dtable, Tensor ids, Tensor dout, int64_t vocab_start, Stream) {
  check_tensor("embedding_backward", "dtable", dtable, DType::kF32);
  check_tensor("embedding_backward", "dout", dout, DType::kF32);
  check_embedding("embedding_backward", dout, ids, dtable);
  const int64_t num_ids = ids.size(0), vocab = dtable.size(0), dim = dtable.size(1);
  const int32_t* id_data = ids.data_as<int32_t>();
  const float* dout_data = dout.data_as<float>();
  float* dtable_data = dtable.data_as<float>();
  // Repeated ids add into the same row, so threads split the columns, not the ids.
  constexpr int64_t kBlock = 64;
#pragma omp parallel for if (dout.numel() >= kMinParallelWork)
  for (int64_t begin = 0; begin < dim; begin += kBlock) {
    const int64_t end = std::min(begin + kBlock, dim);
    for (int64_t i = 0; i < num_ids; ++i) {
      const int64_t row = id_data[i] - vocab_start;
      if (row < 0 || row >= vocab) continue;
      for (int64_t d = begin; d < end; ++d) dtable_data[row * dim + d] += dout_data[i * dim + d];
    }
  }
}

}  // namespace plm::cpu
