// The kernels the model needs, each with a CPU (core/kernels/cpu/) and a CUDA (core/kernels/cuda/)
// implementation behind one declaration. The CPU f32 body is the oracle the CUDA body is tested against.
// These entry points check that every tensor of a call is on one device and dispatch on it.
#pragma once

#include "core/device.h"
#include "core/kernels/kernel_types.h"
#include "core/tensor.h"

namespace plm {
#include "core/kernels/kernel_signatures.inc"
}  // namespace plm
