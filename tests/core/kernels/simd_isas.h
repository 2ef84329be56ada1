// The SIMD ISAs this CPU runs, narrowest first, for the tests that run every variant of a vector kernel.
#pragma once

#include <vector>

#include "core/kernels/cpu/gemm_bf16.h"

namespace plm::testing {

inline std::vector<cpu::SimdIsa> runnable_isas() {
  std::vector<cpu::SimdIsa> isas;
  for (const cpu::SimdIsa isa : {cpu::SimdIsa::kScalar, cpu::SimdIsa::kAvx2, cpu::SimdIsa::kAvx512}) {
    if (static_cast<int>(isa) <= static_cast<int>(cpu::best_simd_isa())) isas.push_back(isa);
  }
  return isas;
}

}  // namespace plm::testing
