// Argument checks shared by the CPU kernels. A failed check is the caller's bug: the message names the op,
// the argument and the tensor it got (dtype, shape, device).
#pragma once

#include "core/check.h"
#include "core/tensor.h"

namespace plm::cpu {

// `t` is defined, on the CPU, holds `dtype` and is contiguous.
inline void check_tensor(const char* op, const char* name, const Tensor& t, DType dtype) {
  PLM_CHECK(t.defined()) << op << ": " << name << " is undefined";
  PLM_CHECK(t.device().is_cpu()) << op << ": " << name << " must be on the CPU, got " << t.describe();
  PLM_CHECK(t.dtype() == dtype) << op << ": " << name << " must be " << dtype_name(dtype) << ", got "
                                << t.describe();
  PLM_CHECK(t.is_contiguous()) << op << ": " << name << " must be contiguous, got " << t.describe();
}

inline void check_shape(const char* op, const char* name, const Tensor& t, const Shape& expected) {
  PLM_CHECK(t.shape() == expected) << op << ": " << name << " must have shape " << expected.to_string()
                                   << ", got " << t.describe();
}

// An f32 CPU contiguous tensor of the expected shape: the common case.
inline void check_f32(const char* op, const char* name, const Tensor& t, const Shape& expected) {
  check_tensor(op, name, t, DType::kF32);
  check_shape(op, name, t, expected);
}

inline void check_rank(const char* op, const char* name, const Tensor& t, int rank) {
  PLM_CHECK_EQ(t.rank(), rank) << op << ": " << name << " " << t.describe();
}

}  // namespace plm::cpu
