// Tensor-parallel region boundaries (Megatron's conjugate pairs), visible at the call site:
//   copy_to_tp       fwd: identity               bwd: copy_to_tp_backward = all-reduce(dx)
//   reduce_from_tp   fwd: reduce_from_tp_forward  bwd: identity
//   gather_from_tp   fwd: gather_tp_blocks        bwd: take_tp_block
//   scatter_to_tp    fwd: take_tp_block           bwd: gather_tp_blocks
// "Blocks" are equal column blocks of the last dim, rank r owning block r. These functions know nothing
// of the model. Tensors: contiguous, on the communicator's device.
#pragma once

#include "distributed/communicator.h"

namespace plm::distributed {

void copy_to_tp_backward(Tensor dx, Communicator& tp, Stream s = {});
void reduce_from_tp_forward(Tensor y, Communicator& tp, Stream s = {});

// out (..., tp * n) = the ranks' in (..., n) side by side along the last dim.
void gather_tp_blocks(Tensor out, Tensor in, Communicator& tp, Stream s = {});
// out (..., n) = this rank's block of in (..., tp * n).
void take_tp_block(Tensor out, Tensor in, Communicator& tp, Stream s = {});

}  // namespace plm::distributed
