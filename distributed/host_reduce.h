// Element-wise reduction of host buffers, shared by the CPU communicators (MPI user ops for bf16/f16,
// and the in-process LocalCommunicator). Sums of bf16/f16 are computed in f32 and rounded once per step.
#pragma once

#include <cstdint>

#include "core/dtype.h"
#include "distributed/communicator.h"

namespace plm::distributed {

// acc[i] = op(acc[i], x[i]) for n elements of dtype. kAvg accumulates like kSum (divide afterwards
// with divide_in_place).
void reduce_into(void* acc, const void* x, int64_t n, DType dtype, ReduceOp op);
void divide_in_place(void* data, int64_t n, DType dtype, int divisor);

}  // namespace plm::distributed
