// The plain CPU attention forward and backward: one query row at a time, scores, max-subtracted softmax and the
// weighted sum of values in loops (the backward recomputes the probabilities from the saved lse). They are the
// oracles the blocked plm::cpu::attention_forward (attention_blocked.cc) and attention_backward
// (attention_backward.cc) are tested and benchmarked against, never the model's path. Same arguments, checks
// and semantics.
#pragma once

#include "core/device.h"
#include "core/kernels/kernel_types.h"
#include "core/tensor.h"

namespace plm::cpu {

void attention_forward_reference(Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v,
                                 const AttentionOptions& options, Stream s = {});
void attention_backward_reference(Tensor dq, Tensor dk, Tensor dv, Tensor dout, Tensor q, Tensor k, Tensor v,
                                  Tensor out, Tensor lse, const AttentionOptions& options, Stream s = {});

}  // namespace plm::cpu
