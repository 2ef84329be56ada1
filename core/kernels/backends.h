// The two backends of every op in ops.h, with identical signatures. Only ops.cc (dispatch) and the
// tests call these directly.
#pragma once

#include "core/device.h"
#include "core/kernels/kernel_types.h"
#include "core/tensor.h"

namespace plm::cpu {
#include "core/kernels/kernel_signatures.inc"
}  // namespace plm::cpu

namespace plm::cuda {
#include "core/kernels/kernel_signatures.inc"
}  // namespace plm::cuda
