#include "core/machine_peak.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <memory>
#include <sstream>
#include <thread>
#include <vector>

#include <cuda_runtime.h>

namespace plm {

namespace {

// Nominal clock from /proc/cpuinfo ("cpu MHz"), the first core's.
double cpu_ghz() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("cpu MHz", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) return std::stod(line.substr(colon + 1)) / 1000.0;
    }
  }
  return 2.0;
}

bool cpu_has_flag(const std::string& flag) {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("flags", 0) == 0) return line.find(" " + flag + " ") != std::string::npos;
  }
  return false;
}

// Best of several triad passes a[i] = b[i] + s * c[i] over f32 arrays far larger than the caches:
// 12 bytes move per element (two reads, one write).
double measure_triad_bytes_per_s() {
  const size_t n = size_t{64} << 20;  // 64 Mi floats per array: 768 MiB moved per pass
  std::unique_ptr<float[]> a(new float[n]), b(new float[n]), c(new float[n]);
#pragma omp parallel for
  for (size_t i = 0; i < n; ++i) {
    a[i] = 0.0f;
    b[i] = 1.0f;
    c[i] = 2.0f;
  }
  double best = 0.0;
  for (int pass = 0; pass < 5; ++pass) {
    const auto start = std::chrono::steady_clock::now();
#pragma omp parallel for
    for (size_t i = 0; i < n; ++i) a[i] = b[i] + 0.5f * c[i];
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    best = std::max(best, 12.0 * static_cast<double>(n) / seconds);
  }
  volatile float sink = a[n / 2];  // keeps the stores observable
  (void)sink;
  return best;
}

}  // namespace

double measure_cpu_read_bytes_per_s() {
  const size_t n = size_t{128} << 20;  // 128 Mi floats: 512 MiB read per pass
  std::unique_ptr<float[]> a(new float[n]);
#pragma omp parallel for
  for (size_t i = 0; i < n; ++i) a[i] = 1.0f;
  double best = 0.0;
  for (int pass = 0; pass < 5; ++pass) {
    const auto start = std::chrono::steady_clock::now();
    float sum = 0.0f;
    // 16 partial sums per thread let the compiler vectorise without reassociation flags.
#pragma omp parallel for reduction(+ : sum)
    for (size_t block = 0; block < n / 16; ++block) {
      float partial = 0.0f;
      for (size_t j = 0; j < 16; ++j) partial += a[block * 16 + j];
      sum += partial;
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    best = std::max(best, 4.0 * static_cast<double>(n) / seconds);
    volatile float sink = sum;  // keeps the reads observable
    (void)sink;
  }
  return best;
}

MachinePeak cpu_compute_peak() {
  const int cores = omp_get_max_threads();
  const double ghz = cpu_ghz();
  const bool avx512 = cpu_has_flag("avx512f");
  const bool avx2 = cpu_has_flag("avx2") && cpu_has_flag("fma");
  // f32 lanes x 2 (FMA) x FMA units; server cores with AVX-512 have 2 FMA units.
  const int flops_per_cycle = avx512 ? 16 * 2 * 2 : avx2 ? 8 * 2 * 2 : 4 * 2;
  MachinePeak peak;
  std::ostringstream os;
  os << cores << " threads x " << ghz << " GHz x " << flops_per_cycle << " f32 flop/cycle ("
     << (avx512 ? "AVX-512, 2 FMA units assumed" : avx2 ? "AVX2+FMA, 2 units" : "SSE") << ")";
  peak.flops_per_s = cores * ghz * 1e9 * flops_per_cycle;
  // vdpbf16ps issues at the FMA rate with two products per f32 lane.
  const bool avx512_bf16 = avx512 && cpu_has_flag("avx512_bf16");
  peak.bf16_flops_per_s = avx512_bf16 ? 2.0 * peak.flops_per_s : peak.flops_per_s;
  os << "; bf16 " << (avx512_bf16 ? "2x (AVX512-BF16)" : "1x (widened)");
  peak.description = os.str();
  return peak;
}

MachinePeak cpu_peak() {
  MachinePeak peak = cpu_compute_peak();
  peak.bytes_per_s = measure_triad_bytes_per_s();
  peak.read_bytes_per_s = measure_cpu_read_bytes_per_s();
  std::ostringstream os;
  os << "; memory " << peak.bytes_per_s / 1e9 << " GB/s measured (triad), " << peak.read_bytes_per_s / 1e9
     << " GB/s (read)";
  peak.description += os.str();
  return peak;
}

MachinePeak cuda_peak(int device) {
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, device);
  int clock_khz = 0, mem_clock_khz = 0;
  cudaDeviceGetAttribute(&clock_khz, cudaDevAttrClockRate, device);
  cudaDeviceGetAttribute(&mem_clock_khz, cudaDevAttrMemoryClockRate, device);
  MachinePeak peak;
  // Dense bf16 tensor-core FLOP/cycle/SM: 1024 x 2 on Ampere (sm_80), 2048 x 2 on Hopper (sm_90).
  const double flops_per_cycle_per_sm = prop.major >= 9 ? 4096.0 : 2048.0;
  peak.flops_per_s = prop.multiProcessorCount * (clock_khz * 1e3) * flops_per_cycle_per_sm;
  peak.bf16_flops_per_s = peak.flops_per_s;
  peak.bytes_per_s = 2.0 * (mem_clock_khz * 1e3) * (prop.memoryBusWidth / 8.0);
  peak.read_bytes_per_s = peak.bytes_per_s;
  std::ostringstream os;
  os << prop.name << ": " << prop.multiProcessorCount << " SMs x " << clock_khz / 1e6 << " GHz, bf16 dense peak "
     << peak.flops_per_s / 1e12 << " TFLOP/s; memory " << peak.bytes_per_s / 1e9 << " GB/s (spec)";
  peak.description = os.str();
  return peak;
}

}  // namespace plm
