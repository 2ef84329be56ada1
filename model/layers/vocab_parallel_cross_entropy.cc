#include "model/layers/vocab_parallel_cross_entropy.h"

#include "core/kernels/linear_cross_entropy.h"
#include "distributed/tp_regions.h"

namespace plm::model {

void vocab_parallel_cross_entropy_forward(Tensor loss, Tensor lse, Tensor hidden, Tensor weight, Tensor targets,
                                          distributed::Communicator& tp, const CrossEntropyOptions& options,
                                          Stream s) {
  const int64_t n = hidden.size(0);
  // Rows: this shard's lse, its target logit; then every shard's lse side by side.
  OwnedTensor stats({2, n}, DType::kF32, hidden.device());
  OwnedTensor shard_lse({n, tp.size()}, DType::kF32, hidden.device());
  const Tensor mine = stats.view().select(0, 0), target_logit = stats.view().select(0, 1);
  linear_cross_entropy_shard_forward(mine, target_logit, hidden, weight, targets, options, s);
  distributed::gather_tp_blocks(shard_lse, mine.reshape({n, 1}), tp, s);
  tp.all_reduce(target_logit, distributed::ReduceOp::kSum, s);  // only the target's shard adds a non-zero
  cross_entropy_merge_shards(loss, lse, shard_lse, target_logit, targets, options, s);
}

void vocab_parallel_cross_entropy_backward(Tensor dhidden, Tensor dweight, Tensor dloss, Tensor hidden, Tensor weight,
                                           Tensor targets, Tensor lse, distributed::Communicator& tp,
                                           const CrossEntropyOptions& options, Stream s) {
  linear_cross_entropy_backward(dhidden, dweight, dloss, hidden, weight, targets, lse, options, s);
  distributed::copy_to_tp_backward(dhidden, tp, s);
}

}  // namespace plm::model
