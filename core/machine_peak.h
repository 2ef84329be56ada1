// Estimates of the machine's physical limits that benchmarks report their ratios against:
// CPU peak f32 and bf16 FLOP/s measured with register-only multiply-add loops on every thread, and memory
// bandwidth measured with a STREAM-style triad and a read-only sum; GPU figures from the device properties.
#pragma once

#include <string>

namespace plm {

struct MachinePeak {
  std::string description;  // "2 threads: f32 AVX-512 FMA 234 GFLOP/s, bf16 vdpbf16ps 466 GFLOP/s (measured ...)"
  double flops_per_s = 0;   // f32 (CPU) or bf16 dense tensor-core (GPU) peak
  double bf16_flops_per_s = 0;  // CPU: bf16 x bf16 with f32 sums (vdpbf16ps: 2 products per f32 lane), else f32's
  double bytes_per_s = 0;   // measured (CPU) or spec (GPU) memory bandwidth
  // CPU: the read-only stream bandwidth (a sum over an array far larger than the caches), the roofline of
  // bandwidth-bound reads such as batch-1 decode; higher than the triad's, which also writes. GPU: bytes_per_s.
  double read_bytes_per_s = 0;
};

// The CPU's read-only stream bandwidth, measured now (a few hundred ms): for rooflines taken in the same run.
double measure_cpu_read_bytes_per_s();

MachinePeak cpu_peak();
// The CPU's compute peaks only (bytes_per_s stays 0): ~20 ms of measuring, for MFU estimates.
MachinePeak cpu_compute_peak();
MachinePeak cuda_peak(int device);

}  // namespace plm
