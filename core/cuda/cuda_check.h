// PLM_CUDA_CHECK: a failed CUDA call is a bug or a dead device at this level; abort with the call, the
// error name and the location.
#pragma once

#include <cuda_runtime.h>

#include "core/check.h"

#define PLM_CUDA_CHECK(expr)                                                              \
  do {                                                                                    \
    const cudaError_t plm_cuda_err_ = (expr);                                             \
    PLM_CHECK(plm_cuda_err_ == cudaSuccess) << #expr << ": " << cudaGetErrorName(plm_cuda_err_) \
                                            << " (" << cudaGetErrorString(plm_cuda_err_) << ")"; \
  } while (0)

// Checks the launch of the kernel just issued.
#define PLM_CUDA_CHECK_LAUNCH() PLM_CUDA_CHECK(cudaGetLastError())
