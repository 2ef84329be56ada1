// CPU embedding lookup and its gradient over one vocab shard [vocab_start, vocab_start + V): ids outside
// the shard give zero rows forward and no gradient (another rank owns them). The forward also reads a bf16
// table (inference weights kept bf16), widening its rows exactly into the f32 output, also from weight panels
// (a tied embedding whose LM head CPU bf16 inference packed: gemm_bf16_packed.h).
#include <algorithm>
#include <cstring>

#include "core/kernels/backends.h"
#include "core/kernels/cpu/checks.h"
#include "core/kernels/cpu/gemm_bf16_packed.h"
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

// out[i] = table row ids[i] - vocab_start as f32 (copy_row(row, dst) writes it), or zeros outside [0, vocab).
template <typename CopyRow>
void gather_rows(const Tensor& out, const Tensor& ids, int64_t vocab, int64_t vocab_start, const CopyRow& copy_row) {
  const int64_t num_ids = ids.size(0), dim = out.size(1);
  const int32_t* id_data = ids.data_as<int32_t>();
  float* out_data = out.data_as<float>();
#pragma omp parallel for if (out.numel() >= kMinParallelWork)
  for (int64_t i = 0; i < num_ids; ++i) {
    const int64_t row = id_data[i] - vocab_start;
    float* dst = out_data + i * dim;
    if (row < 0 || row >= vocab) {
      std::fill(dst, dst + dim, 0.0f);
    } else {
      copy_row(row, dst);
    }
  }
}

void check_forward(const char* op, const Tensor& out, const Tensor& ids, const Tensor& table) {
  check_tensor(op, "out", out, DType::kF32);
  PLM_CHECK(table.defined() && (table.dtype() == DType::kF32 || table.dtype() == DType::kBF16))
      << op << ": table must be f32 or bf16, got " << table.describe();
  check_tensor(op, "table", table, table.dtype());
  check_embedding(op, out, ids, table);
}

}  // namespace

void embedding_forward(Tensor out, Tensor ids, Tensor table, int64_t vocab_start, Stream) {
  check_forward("embedding_forward", out, ids, table);
  const int64_t dim = table.size(1);
  if (table.dtype() == DType::kBF16) {
    const bf16* rows = table.data_as<bf16>();
    gather_rows(out, ids, table.size(0), vocab_start, [&](int64_t row, float* dst) {
      for (int64_t d = 0; d < dim; ++d) dst[d] = static_cast<float>(rows[row * dim + d]);
    });
  } else {
    const float* rows = table.data_as<float>();
    gather_rows(out, ids, table.size(0), vocab_start, [&](int64_t row, float* dst) {
      std::memcpy(dst, rows + row * dim, static_cast<size_t>(dim) * sizeof(float));
    });
  }
}

void embedding_forward_weight_panels(Tensor out, Tensor ids, Tensor table, int64_t vocab_start) {
  check_forward("embedding_forward_weight_panels", out, ids, table);
  PLM_CHECK(table.dtype() == DType::kBF16 && weight_panels_fit(table.size(0), table.size(1)))
      << "embedding_forward_weight_panels: a bf16 table in weight panels, got " << table.describe();
  const int64_t dim = table.size(1), pairs = dim / 2;
  const bf16* panels = table.data_as<bf16>();
  gather_rows(out, ids, table.size(0), vocab_start, [&](int64_t row, float* dst) {
    // Row r's pair p is word [r / 32][p][r % 32] (gemm_bf16_packed.h).
    const bf16* words = panels + 2 * ((row / kWeightPanelRows) * kWeightPanelRows * pairs + row % kWeightPanelRows);
    for (int64_t p = 0; p < pairs; ++p) {
      dst[2 * p] = static_cast<float>(words[2 * kWeightPanelRows * p]);
      dst[2 * p + 1] = static_cast<float>(words[2 * kWeightPanelRows * p + 1]);
    }
  });
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
