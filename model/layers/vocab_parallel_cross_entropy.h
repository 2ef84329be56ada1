// The LM head fused with a vocab-parallel cross-entropy (Megatron's VocabParallelCrossEntropy): TP rank r holds
// the head's rows [vocab_start, vocab_start + V / tp) and makes only its shard's logits, a vocab chunk at a time
// (core/kernels/linear_cross_entropy.h); the (N, V) logits exist nowhere, not even as shards.
//   forward:  each rank's shard lse (N) and target logit (N, 0 off the shard); the lse gathered into (N, tp) and
//             merged, the target logit all-reduced: 2 N f32 of payload per rank
//   backward: each rank's dlogits from its shard against the merged lse; dhidden = sum over ranks of
//             dlogits · W_shard, all-reduced (the copy_to_tp backward of hidden: N D of payload); dW_shard local
// hidden (N, D) must be the same on every rank; targets (N) i32 are global ids. Gradient rule: dhidden =, dW +=.
#pragma once

#include "core/kernels/kernel_types.h"
#include "core/tensor.h"
#include "distributed/communicator.h"

namespace plm::model {

// loss, lse: (N) f32 over the whole vocabulary, the same on every rank. weight: (V / tp, D) this rank's rows,
// the first being id options.vocab_start.
void vocab_parallel_cross_entropy_forward(Tensor loss, Tensor lse, Tensor hidden, Tensor weight, Tensor targets,
                                          distributed::Communicator& tp, const CrossEntropyOptions& options,
                                          Stream s = {});

// dloss: (N) f32 d(total)/d(loss[n]); lse: the forward's. dweight undefined: a frozen head.
void vocab_parallel_cross_entropy_backward(Tensor dhidden, Tensor dweight, Tensor dloss, Tensor hidden, Tensor weight,
                                           Tensor targets, Tensor lse, distributed::Communicator& tp,
                                           const CrossEntropyOptions& options, Stream s = {});

}  // namespace plm::model
