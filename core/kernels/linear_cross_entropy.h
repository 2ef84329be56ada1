// Vocab-chunked lm_head + cross-entropy: logits = hidden · weight^T are produced options.vocab_chunk
// columns at a time into one scratch buffer on hidden's device, so the (N, V) logits never exist whole.
// Built from dispatching ops, so it runs on either backend; CUDA work is ordered on stream `s`.
#pragma once

#include "core/device.h"
#include "core/kernels/kernel_types.h"
#include "core/tensor.h"

namespace plm {

// loss, lse: (N) f32: the per-row loss (0 where targets == ignore_index) and the log-sum-exp saved for
// backward. hidden: (N, D); weight: (V, D), the nn.Linear layout; targets: (N) i32.
void linear_cross_entropy_forward(Tensor loss, Tensor lse, Tensor hidden, Tensor weight, Tensor targets,
                                  const CrossEntropyOptions& options, Stream s = {});

// dhidden (N, D) is written (=), dweight (V, D) accumulates (+=) unless undefined (frozen); dloss: (N) f32, d(total)/d(loss[n]).
void linear_cross_entropy_backward(Tensor dhidden, Tensor dweight, Tensor dloss, Tensor hidden, Tensor weight,
                                   Tensor targets, Tensor lse, const CrossEntropyOptions& options, Stream s = {});

}  // namespace plm
