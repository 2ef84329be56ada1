// The plain CPU attention forward: one query row at a time, scores, max-subtracted softmax and the weighted
// sum of values in loops. It is the oracle the blocked plm::cpu::attention_forward (attention_blocked.cc) is
// tested and benchmarked against, never the model's path. Same arguments, checks and semantics.
#pragma once

#include "core/device.h"
#include "core/kernels/kernel_types.h"
#include "core/tensor.h"

namespace plm::cpu {

void attention_forward_reference(Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v,
                                 const AttentionOptions& options, Stream s = {});

}  // namespace plm::cpu
