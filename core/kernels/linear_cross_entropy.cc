// Vocab-chunked lm_head + cross-entropy over dispatching ops. One (N, vocab_chunk) logits buffer is reused
// for every chunk; backward recomputes each chunk's logits and turns them into dlogits in place. The scratch
// is freed on return, which the caching allocator makes safe under plm's one-compute-stream rule.
#include "core/kernels/linear_cross_entropy.h"

#include <algorithm>
#include <limits>

#include "core/check.h"
#include "core/kernels/ops.h"

namespace plm {

namespace {

void check_shapes(const char* op, Tensor hidden, Tensor weight, Tensor targets, const CrossEntropyOptions& options) {
  PLM_CHECK(hidden.rank() == 2 && weight.rank() == 2 && hidden.size(1) == weight.size(1))
      << op << ": hidden " << hidden.describe() << " must be (N, D) and weight " << weight.describe() << " (V, D)";
  PLM_CHECK(targets.dtype() == DType::kI32 && targets.shape() == Shape({hidden.size(0)}))
      << op << ": targets " << targets.describe() << " must be (N = " << hidden.size(0) << ") i32";
  PLM_CHECK_GT(options.vocab_chunk, 0) << op << ": vocab_chunk";
}

void check_row_vector(const char* op, const char* name, Tensor t, int64_t num_rows) {
  PLM_CHECK(t.dtype() == DType::kF32 && t.shape() == Shape({num_rows}))
      << op << ": " << name << " " << t.describe() << " must be (N = " << num_rows << ") f32";
}

// Reusable logits storage for chunks of at most `vocab_chunk` columns, in hidden's dtype and device (the
// matmul output dtype follows its inputs).
class ChunkScratch {
 public:
  ChunkScratch(Tensor hidden, int64_t vocab, int64_t vocab_chunk)
      : storage_({hidden.size(0), std::min(vocab, vocab_chunk)}, hidden.dtype(), hidden.device()) {}

  int64_t max_width() const { return storage_.size(1); }
  // (N, width) contiguous view of the start of the storage.
  Tensor logits(int64_t width) const {
    return Tensor(storage_.view().data(), {storage_.size(0), width}, storage_.dtype(), storage_.device());
  }

 private:
  OwnedTensor storage_;
};

// logits (N, C) = hidden · weight[start, start + C)^T.
void chunk_logits(Tensor logits, Tensor hidden, Tensor weight, int64_t start, DType compute, Stream s) {
  matmul(logits, hidden, weight.slice(0, start, start + logits.size(1)), {.trans_b = true, .compute = compute}, s);
}

// The online log-sum-exp statistics of every chunk of the head: running (3, N) f32 = max, sum, target logit.
void running_statistics(Tensor running, Tensor hidden, Tensor weight, Tensor targets,
                        const CrossEntropyOptions& options, Stream s) {
  const int64_t vocab = weight.size(0);
  const Tensor running_max = running.select(0, 0), running_sum = running.select(0, 1);
  const Tensor target_logit = running.select(0, 2);
  fill(running_max, -std::numeric_limits<float>::infinity(), s);
  fill(running_sum, 0.0f, s);
  fill(target_logit, 0.0f, s);
  const ChunkScratch scratch(hidden, vocab, options.vocab_chunk);
  for (int64_t start = 0; start < vocab; start += scratch.max_width()) {
    const Tensor logits = scratch.logits(std::min(scratch.max_width(), vocab - start));
    chunk_logits(logits, hidden, weight, start, options.compute, s);
    cross_entropy_chunk_forward(running_max, running_sum, target_logit, logits, targets, options.vocab_start + start,
                                s);
  }
}

}  // namespace

void linear_cross_entropy_forward(Tensor loss, Tensor lse, Tensor hidden, Tensor weight, Tensor targets,
                                  const CrossEntropyOptions& options, Stream s) {
  const char* op = "linear_cross_entropy_forward";
  check_shapes(op, hidden, weight, targets, options);
  const int64_t num_rows = hidden.size(0);
  check_row_vector(op, "loss", loss, num_rows);
  check_row_vector(op, "lse", lse, num_rows);
  const OwnedTensor running({3, num_rows}, DType::kF32, hidden.device());
  running_statistics(running, hidden, weight, targets, options, s);
  cross_entropy_finalize(loss, lse, running.view().select(0, 0), running.view().select(0, 1),
                         running.view().select(0, 2), targets, options.ignore_index, s);
}

void linear_cross_entropy_shard_forward(Tensor shard_lse, Tensor target_logit, Tensor hidden, Tensor weight,
                                        Tensor targets, const CrossEntropyOptions& options, Stream s) {
  const char* op = "linear_cross_entropy_shard_forward";
  check_shapes(op, hidden, weight, targets, options);
  const int64_t num_rows = hidden.size(0);
  check_row_vector(op, "shard_lse", shard_lse, num_rows);
  check_row_vector(op, "target_logit", target_logit, num_rows);
  const OwnedTensor running({4, num_rows}, DType::kF32, hidden.device());
  running_statistics(running.view().slice(0, 0, 3), hidden, weight, targets, options, s);
  // The shard's lse (its "loss" row is scratch); the target logit as the chunks found it.
  cross_entropy_finalize(running.view().select(0, 3), shard_lse, running.view().select(0, 0),
                         running.view().select(0, 1), running.view().select(0, 2), targets, options.ignore_index, s);
  copy_tensor(target_logit, running.view().select(0, 2), s);
}

void cross_entropy_merge_shards(Tensor loss, Tensor lse, Tensor shard_lse, Tensor target_logit, Tensor targets,
                                const CrossEntropyOptions& options, Stream s) {
  const char* op = "cross_entropy_merge_shards";
  PLM_CHECK(shard_lse.rank() == 2 && shard_lse.dtype() == DType::kF32)
      << op << ": shard_lse " << shard_lse.describe() << " must be (N, shards) f32";
  const int64_t num_rows = shard_lse.size(0);
  check_row_vector(op, "loss", loss, num_rows);
  check_row_vector(op, "lse", lse, num_rows);
  check_row_vector(op, "target_logit", target_logit, num_rows);
  // The shards' lse values are the logits of one more online log-sum-exp (over P columns); its target logit is
  // scratch: the target's logit comes from its shard.
  const OwnedTensor running({3, num_rows}, DType::kF32, shard_lse.device());
  const Tensor running_max = running.view().select(0, 0), running_sum = running.view().select(0, 1);
  fill(running_max, -std::numeric_limits<float>::infinity(), s);
  fill(running_sum, 0.0f, s);
  cross_entropy_chunk_forward(running_max, running_sum, running.view().select(0, 2), shard_lse, targets, 0, s);
  cross_entropy_finalize(loss, lse, running_max, running_sum, target_logit, targets, options.ignore_index, s);
}

void linear_cross_entropy_backward(Tensor dhidden, Tensor dweight, Tensor dloss, Tensor hidden, Tensor weight,
                                   Tensor targets, Tensor lse, const CrossEntropyOptions& options, Stream s) {
  const char* op = "linear_cross_entropy_backward";
  check_shapes(op, hidden, weight, targets, options);
  const int64_t num_rows = hidden.size(0), vocab = weight.size(0);
  check_row_vector(op, "dloss", dloss, num_rows);
  check_row_vector(op, "lse", lse, num_rows);
  PLM_CHECK(dhidden.shape() == hidden.shape() && (!dweight.defined() || dweight.shape() == weight.shape()))
      << op << ": dhidden " << dhidden.describe() << " and dweight " << dweight.describe() << " must match hidden "
      << hidden.describe() << " and weight " << weight.describe();

  const ChunkScratch scratch(hidden, vocab, options.vocab_chunk);
  for (int64_t start = 0; start < vocab; start += scratch.max_width()) {
    const int64_t width = std::min(scratch.max_width(), vocab - start);
    const Tensor dlogits = scratch.logits(width);
    chunk_logits(dlogits, hidden, weight, start, options.compute, s);
    // Element-wise, so the logits become dlogits in place.
    cross_entropy_chunk_backward(dlogits, dlogits, lse, targets, dloss, options.vocab_start + start,
                                 options.ignore_index, s);

    // dhidden (N, D) = sum over chunks of dlogits (N, C) · weight[chunk] (C, D): the first chunk writes.
    matmul(dhidden, dlogits, weight.slice(0, start, start + width),
           {.beta = start == 0 ? 0.0f : 1.0f, .compute = options.compute}, s);

    // dweight[chunk] (C, D) += dlogits^T (C, N) · hidden (N, D); undefined dweight: a frozen head.
    if (!dweight.defined()) continue;
    matmul(dweight.slice(0, start, start + width), dlogits, hidden,
           {.trans_a = true, .beta = 1.0f, .compute = options.compute}, s);
  }
}

}  // namespace plm
