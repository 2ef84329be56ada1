// The CPU attention backward the model runs, blocked like the forward (attention_blocked.cc): per (sequence, kv
// head) the keys and values are packed once, and per block of ~kBlockRows query rows (queries x the query heads
// sharing the kv head) five GEMMs (sgemm.h) recompute the scores and take the gradients, with P recomputed from
// the saved lse by the vector exp (vector_kernels.h):
//   S = scale Q K^T, P = exp(S - lse) on the visible keys, dP = dO V^T, dS = P (dP - delta), delta = dO . O,
//   dV += P^T dO, dQ = scale dS K, dK += scale dS^T Q.
// A (sequence, kv head) is one task: its dK and dV are accumulated by one thread, so threads never race. Same
// contract as kernel_signatures.inc; tested against the plain loop attention_backward_reference (attention.cc).
#include <algorithm>
#include <optional>
#include <vector>

#include "core/kernels/backends.h"
#include "core/kernels/cpu/attention_geometry.h"
#include "core/kernels/cpu/parallel.h"
#include "core/kernels/cpu/serial_blas.h"
#include "core/kernels/cpu/sgemm.h"
#include "core/kernels/cpu/vector_kernels.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace plm::cpu {

namespace {

// Query rows per block: the M of the score GEMMs and the K of the dK/dV GEMMs; the forward's measured choice
// (attention_blocked.cc), not tuned again for the backward.
constexpr int64_t kBlockRows = 256;

// The arguments every block reads.
struct BackwardInputs {
  const AttentionGeometry& g;
  const VectorKernels& simd;
  const float *q, *k, *v, *out, *dout, *lse;  // q/out/dout (B, Sq, Hq, Dh); k/v (B, Skv, Hkv, Dh); lse (B, Hq, Sq)
  float *dq, *dk, *dv;
};

// Per-thread buffers, reused across blocks and calls (fresh ones would page-fault every call).
struct BackwardScratch {
  std::vector<float> k, v;      // (n_b, Dh) the task's packed keys and values
  std::vector<float> dk, dv;    // (n_b, Dh) their gradients, accumulated over the task's blocks
  std::vector<float> q, dout;   // (R, Dh) the block's query rows and their output gradients
  std::vector<float> dq;        // (R, Dh)
  std::vector<float> p;         // (R, n) scores, then probabilities
  std::vector<float> ds;        // (R, n) dP, then dS
  std::vector<float> delta;     // (R) dO . O
};

// Queries [i0, i1) of sequence b with the query heads of kv_head, as rows r = (i - i0) * G + (h - first head).
struct Block {
  int64_t b, kv_head, i0, i1;
};

// Copies the block's rows of x (B, Sq, Hq, Dh) into rows (R, Dh), and back.
void copy_block_rows(const AttentionGeometry& g, const Block& blk, const float* x, float* rows) {
  const int64_t width = g.group_size() * g.head_dim;
  for (int64_t i = blk.i0; i < blk.i1; ++i) {
    std::copy_n(x + g.q_row(blk.b, i, blk.kv_head * g.group_size()), width, rows + (i - blk.i0) * width);
  }
}

void store_block_rows(const AttentionGeometry& g, const Block& blk, const float* rows, float* x) {
  const int64_t width = g.group_size() * g.head_dim;
  for (int64_t i = blk.i0; i < blk.i1; ++i) {
    std::copy_n(rows + (i - blk.i0) * width, width, x + g.q_row(blk.b, i, blk.kv_head * g.group_size()));
  }
}

// Turns row r's scaled scores into P over [0, n): exp(s - lse) on the keys query i sees, 0 elsewhere (all 0 for
// a row that saw no key).
void probabilities_row(const BackwardInputs& in, const Block& blk, int64_t i, int64_t h, int64_t n, float* row) {
  const AttentionGeometry& g = in.g;
  const float row_lse = in.lse[g.lse_index(blk.b, h, i)];
  const VisibleKeys keys = visible_keys(g, blk.b, i);
  if (row_lse == kAttentionNegInf) {
    std::fill_n(row, n, 0.0f);
    return;
  }
  if (keys.segments) {
    for (int64_t j = 0; j < keys.end; ++j) {
      if (!keys.contains(j)) row[j] = kAttentionNegInf;  // exp gives 0
    }
  }
  in.simd.exp_sum(row, keys.end, row_lse);
  std::fill(row + keys.end, row + n, 0.0f);
}

void backward_block(const BackwardInputs& in, const Block& blk, BackwardScratch& s) {
  const AttentionGeometry& g = in.g;
  const int64_t group = g.group_size(), dim = g.head_dim, rows = (blk.i1 - blk.i0) * group;
  // The block's last query sees the most keys (causal ends grow with i).
  const int64_t n = visible_keys(g, blk.b, blk.i1 - 1).end;
  s.q.resize(static_cast<size_t>(rows * dim));
  s.dout.resize(static_cast<size_t>(rows * dim));
  s.dq.resize(static_cast<size_t>(rows * dim));
  s.delta.resize(static_cast<size_t>(rows));
  copy_block_rows(g, blk, in.q, s.q.data());
  copy_block_rows(g, blk, in.dout, s.dout.data());
  if (n == 0) {  // no query of the block sees a key
    std::fill(s.dq.begin(), s.dq.end(), 0.0f);
    store_block_rows(g, blk, s.dq.data(), in.dq);
    return;
  }
  // delta_r = dO_r . O_r = sum_j P_rj dP_rj, the row term of the softmax backward (s.dq holds O for now).
  copy_block_rows(g, blk, in.out, s.dq.data());
  for (int64_t r = 0; r < rows; ++r) s.delta[r] = in.simd.dot(s.dout.data() + r * dim, s.dq.data() + r * dim, dim);

  s.p.resize(static_cast<size_t>(rows * n));
  s.ds.resize(static_cast<size_t>(rows * n));
  sgemm({.a = s.q.data(), .b = s.k.data(), .c = s.p.data(), .m = rows, .n = n, .k = dim, .trans_a = false,
         .trans_b = true, .alpha = g.scale, .beta = 0.0f, .ldc = n});
  sgemm({.a = s.dout.data(), .b = s.v.data(), .c = s.ds.data(), .m = rows, .n = n, .k = dim, .trans_a = false,
         .trans_b = true, .alpha = 1.0f, .beta = 0.0f, .ldc = n});
  for (int64_t r = 0; r < rows; ++r) {
    float* p_row = s.p.data() + r * n;
    probabilities_row(in, blk, blk.i0 + r / group, blk.kv_head * group + r % group, n, p_row);
    in.simd.softmax_grad(p_row, s.ds.data() + r * n, s.delta[r], s.ds.data() + r * n, n);
  }
  // dV (n, Dh) += P^T dO; dQ (R, Dh) = scale dS K; dK (n, Dh) += scale dS^T Q.
  sgemm({.a = s.p.data(), .b = s.dout.data(), .c = s.dv.data(), .m = n, .n = dim, .k = rows, .trans_a = true,
         .trans_b = false, .alpha = 1.0f, .beta = 1.0f, .ldc = dim});
  sgemm({.a = s.ds.data(), .b = s.k.data(), .c = s.dq.data(), .m = rows, .n = dim, .k = n, .trans_a = false,
         .trans_b = false, .alpha = g.scale, .beta = 0.0f, .ldc = dim});
  sgemm({.a = s.ds.data(), .b = s.q.data(), .c = s.dk.data(), .m = n, .n = dim, .k = rows, .trans_a = true,
         .trans_b = false, .alpha = g.scale, .beta = 1.0f, .ldc = dim});
  store_block_rows(g, blk, s.dq.data(), in.dq);
}

// Every query block of (sequence b, kv_head), then its dK and dV: the keys past kv_lens[b] get 0.
void backward_task(const BackwardInputs& in, int64_t b, int64_t kv_head, BackwardScratch& s) {
  const AttentionGeometry& g = in.g;
  const int64_t dim = g.head_dim, keys = g.valid_keys(b), q_len = g.query_len(b);
  s.k.resize(static_cast<size_t>(keys * dim));
  s.v.resize(static_cast<size_t>(keys * dim));
  s.dk.assign(static_cast<size_t>(keys * dim), 0.0f);
  s.dv.assign(static_cast<size_t>(keys * dim), 0.0f);
  for (int64_t j = 0; j < keys; ++j) {
    std::copy_n(in.k + g.kv_row(b, j, kv_head), dim, s.k.data() + j * dim);
    std::copy_n(in.v + g.kv_row(b, j, kv_head), dim, s.v.data() + j * dim);
  }
  const int64_t max_queries = std::max<int64_t>(1, kBlockRows / g.group_size());
  const int64_t num_blocks = (q_len + max_queries - 1) / max_queries;
  for (int64_t blk = 0; blk < num_blocks; ++blk) {
    const int64_t i0 = q_len * blk / num_blocks, i1 = q_len * (blk + 1) / num_blocks;
    backward_block(in, {b, kv_head, i0, i1}, s);
  }
  for (int64_t j = 0; j < g.kv_len; ++j) {
    float* dk_row = in.dk + g.kv_row(b, j, kv_head);
    float* dv_row = in.dv + g.kv_row(b, j, kv_head);
    if (j < keys) {
      std::copy_n(s.dk.data() + j * dim, dim, dk_row);
      std::copy_n(s.dv.data() + j * dim, dim, dv_row);
    } else {
      std::fill_n(dk_row, dim, 0.0f);
      std::fill_n(dv_row, dim, 0.0f);
    }
  }
}

int max_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

}  // namespace

void attention_backward(Tensor dq, Tensor dk, Tensor dv, Tensor dout, Tensor q, Tensor k, Tensor v, Tensor out,
                        Tensor lse, const AttentionOptions& options, Stream) {
  const char* op = "attention_backward";
  const AttentionGeometry g = check_attention_backward(op, dq, dk, dv, dout, q, k, v, out, lse, options);
  const BackwardInputs in{.g = g,
                          .simd = vector_kernels(best_simd_isa()),
                          .q = q.data_as<float>(),
                          .k = k.data_as<float>(),
                          .v = v.data_as<float>(),
                          .out = out.data_as<float>(),
                          .dout = dout.data_as<float>(),
                          .lse = lse.data_as<float>(),
                          .dq = dq.data_as<float>(),
                          .dk = dk.data_as<float>(),
                          .dv = dv.data_as<float>()};
  // Threads over tasks with serial GEMMs inside while there are enough tasks to go round; else the tasks run
  // one after the other and each GEMM is threaded.
  const int64_t num_tasks = g.batch * g.num_kv_heads;
  const bool threads_over_tasks = g.work() >= kMinParallelWork && num_tasks >= max_threads();
  std::optional<SerialBlasScope> serial_blas;
  if (threads_over_tasks) serial_blas.emplace();
#pragma omp parallel for collapse(2) schedule(dynamic) if (threads_over_tasks)
  for (int64_t b = 0; b < g.batch; ++b) {
    for (int64_t kv_head = 0; kv_head < g.num_kv_heads; ++kv_head) {
      thread_local BackwardScratch scratch;
      backward_task(in, b, kv_head, scratch);
    }
  }
}

}  // namespace plm::cpu
