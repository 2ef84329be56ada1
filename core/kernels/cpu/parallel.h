// How the CPU kernels split work across OpenMP threads. A parallel region costs microseconds on an idle
// machine and up to a scheduler time slice on a loaded one, so loops smaller than kMinParallelWork
// elements run on the calling thread (`#pragma omp parallel for if (work >= kMinParallelWork)`).
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>

namespace plm::cpu {

inline constexpr int64_t kMinParallelWork = int64_t{1} << 15;

// out[d] += sum over rows n of term(n, d): the parameter-grad reduction of the norms and bias grads.
// Threads own disjoint column blocks (no races, no atomics); each column sums in double for accuracy.
template <typename Term>
void add_column_sums(float* out, int64_t num_rows, int64_t num_cols, const Term& term) {
  constexpr int64_t kBlock = 64;  // columns per task
#pragma omp parallel for if (num_rows * num_cols >= kMinParallelWork)
  for (int64_t begin = 0; begin < num_cols; begin += kBlock) {
    const int64_t end = std::min(begin + kBlock, num_cols);
    std::array<double, kBlock> acc{};
    for (int64_t n = 0; n < num_rows; ++n) {
      for (int64_t d = begin; d < end; ++d) acc[d - begin] += term(n, d);
    }
    for (int64_t d = begin; d < end; ++d) out[d] += static_cast<float>(acc[d - begin]);
  }
}

}  // namespace plm::cpu
