// `plm bench kernels`: times every kernel of core/kernels/ops.h on model-sized shapes and prints
// GFLOP/s or GB/s with the ratio to the machine's peak (core/machine_peak.h).
#pragma once

#include <string>

namespace plm::bench {

struct KernelBenchOptions {
  std::string device = "cpu";  // "cpu" or "cuda"
  bool quick = false;          // smaller shapes and fewer repetitions (smoke runs)
  std::string filter;          // only kernels whose name contains this
};

// Returns the process exit code; prints the table on stdout.
int run_kernel_bench(const KernelBenchOptions& options);

}  // namespace plm::bench
