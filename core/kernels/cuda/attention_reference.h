// A naive CUDA attention forward: one thread per (batch, query, head), plain loops over the keys. It is
// the reference the flash kernel (attention_forward.cu) is tested and benchmarked against, never the
// model's path. Same arguments, checks and semantics as plm::cuda::attention_forward.
#pragma once

#include "core/device.h"
#include "core/kernels/kernel_types.h"
#include "core/tensor.h"

namespace plm::cuda {

void attention_forward_reference(Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v,
                                 const AttentionOptions& options, Stream s = {});

}  // namespace plm::cuda
