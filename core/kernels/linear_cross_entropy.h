// Vocab-chunked lm_head + cross-entropy: logits = hidden · weight^T are produced options.vocab_chunk
// columns at a time into one scratch buffer on hidden's device, so the (N, V) logits never exist whole.
// Built from dispatching ops, so it runs on either backend; CUDA work is ordered on stream `s`.
// A vocab-parallel loss (model/layers/vocab_parallel_cross_entropy.h) runs the shard forward on each rank's rows
// of the head (options.vocab_start: their first id), merges the shards' statistics and runs the backward per
// shard: the logits are never gathered.
#pragma once

#include "core/device.h"
#include "core/kernels/kernel_types.h"
#include "core/tensor.h"

namespace plm {

// loss, lse: (N) f32: the per-row loss (0 where targets == ignore_index) and the log-sum-exp saved for
// backward. hidden: (N, D); weight: (V, D), the nn.Linear layout; targets: (N) i32.
void linear_cross_entropy_forward(Tensor loss, Tensor lse, Tensor hidden, Tensor weight, Tensor targets,
                                  const CrossEntropyOptions& options, Stream s = {});

// The statistics of one vocabulary shard: shard_lse (N) f32 = the log-sum-exp of the shard's logits; target_logit
// (N) f32 = the target's logit where the target lies in the shard, 0 elsewhere. weight: (V_shard, D).
void linear_cross_entropy_shard_forward(Tensor shard_lse, Tensor target_logit, Tensor hidden, Tensor weight,
                                        Tensor targets, const CrossEntropyOptions& options, Stream s = {});

// The loss over the whole vocabulary from P shards: shard_lse (N, P) f32 (column p: shard p's log-sum-exp),
// target_logit (N) f32 (the target's logit, from the shard that holds it). lse (N) = log sum_p exp(shard_lse[n, p]),
// loss (N) = lse - target_logit, 0 where targets == ignore_index. With P = 1 it equals the unsharded forward bitwise.
void cross_entropy_merge_shards(Tensor loss, Tensor lse, Tensor shard_lse, Tensor target_logit, Tensor targets,
                                const CrossEntropyOptions& options, Stream s = {});

// With options.vocab_start: the backward of a shard, lse being the whole vocabulary's.
// dhidden (N, D) is written (=), dweight (V, D) accumulates (+=) unless undefined (frozen); dloss: (N) f32, d(total)/d(loss[n]).
void linear_cross_entropy_backward(Tensor dhidden, Tensor dweight, Tensor dloss, Tensor hidden, Tensor weight,
                                   Tensor targets, Tensor lse, const CrossEntropyOptions& options, Stream s = {});

}  // namespace plm
