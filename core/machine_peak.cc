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

#if defined(__x86_64__)
#include <immintrin.h>
#endif

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

// Register-only multiply-add loops: kChains independent accumulators (more than any FMA unit's latency x
// throughput) so each loop runs at the issue rate; returns the accumulators' sum so nothing is optimised away.
// Measured rather than assumed: a core whose 512-bit FMA issues once per cycle (Zen 4) reaches half of
// "2 FMA units x nominal clock", and turbo clocks exceed the nominal one.
constexpr int kChains = 24;
enum class PeakLoop { kAvx512Fma, kAvx2Fma, kAvx512Bf16 };
#if defined(__x86_64__)
// GCC 12's AVX-512 intrinsics fill unused lanes from a self-initialised variable, which -Wuninitialized
// flags once inlined (GCC bug 105593, fixed in 13).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
constexpr int64_t kPeakIterations = int64_t{1} << 20;  // ~7 ms per loop at one iteration per 24 cycles

__attribute__((target("avx512f"))) float avx512_fma_loop(int64_t iterations) {
  __m512 acc[kChains];
  for (__m512& a : acc) a = _mm512_set1_ps(1.0f);
  __m512 x = _mm512_set1_ps(0.999f);
  const __m512 y = _mm512_set1_ps(0.001f);
  for (int64_t i = 0; i < iterations; ++i) {
#pragma GCC unroll 24
    for (__m512& a : acc) a = _mm512_fmadd_ps(a, x, y);
    asm volatile("" : "+v"(x));
  }
  float sum = 0.0f;
  for (const __m512& a : acc) sum += _mm512_reduce_add_ps(a);
  return sum;
}

__attribute__((target("avx2,fma"))) float avx2_fma_loop(int64_t iterations) {
  __m256 acc[kChains];
  for (__m256& a : acc) a = _mm256_set1_ps(1.0f);
  __m256 x = _mm256_set1_ps(0.999f);
  const __m256 y = _mm256_set1_ps(0.001f);
  for (int64_t i = 0; i < iterations; ++i) {
#pragma GCC unroll 24
    for (__m256& a : acc) a = _mm256_fmadd_ps(a, x, y);
    asm volatile("" : "+x"(x));
  }
  alignas(32) float lanes[8];
  float sum = 0.0f;
  for (const __m256& a : acc) {
    _mm256_store_ps(lanes, a);
    for (float v : lanes) sum += v;
  }
  return sum;
}

__attribute__((target("avx512f,avx512bw,avx512bf16"))) float avx512_bf16_loop(int64_t iterations) {
  __m512 acc[kChains];
  for (__m512& a : acc) a = _mm512_setzero_ps();
  __m512bh x = reinterpret_cast<__m512bh>(_mm512_set1_epi32(0x3c003c00));  // bf16 pairs of 2^-7
  for (int64_t i = 0; i < iterations; ++i) {
#pragma GCC unroll 24
    for (__m512& a : acc) a = _mm512_dpbf16_ps(a, x, x);
    asm volatile("" : "+v"(x));
  }
  float sum = 0.0f;
  for (const __m512& a : acc) sum += _mm512_reduce_add_ps(a);
  return sum;
}
#pragma GCC diagnostic pop
#endif

// FLOP/s of `loop` on every OpenMP thread at once (after a warm-up that lifts the clock), summed; 0 where the
// CPU lacks its instructions.
double measure_flops(PeakLoop loop) {
#if defined(__x86_64__)
  double flops_per_iteration = 0.0;
  float (*body)(int64_t) = nullptr;
  switch (loop) {
    case PeakLoop::kAvx512Fma:
      if (!__builtin_cpu_supports("avx512f")) return 0.0;
      body = avx512_fma_loop, flops_per_iteration = kChains * 16 * 2;
      break;
    case PeakLoop::kAvx2Fma:
      if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return 0.0;
      body = avx2_fma_loop, flops_per_iteration = kChains * 8 * 2;
      break;
    case PeakLoop::kAvx512Bf16:
      if (!__builtin_cpu_supports("avx512bf16") || !__builtin_cpu_supports("avx512bw")) return 0.0;
      body = avx512_bf16_loop, flops_per_iteration = kChains * 32 * 2;
      break;
  }
  double seconds = 0.0;
  int threads = 1;
#pragma omp parallel reduction(max : seconds)
  {
    volatile float sink = body(kPeakIterations / 4);  // warm-up, and keeps the sums observable
#pragma omp barrier
    const auto start = std::chrono::steady_clock::now();
    sink = sink + body(kPeakIterations);
    seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
#pragma omp single
    threads = omp_get_num_threads();
  }
  return threads * flops_per_iteration * static_cast<double>(kPeakIterations) / seconds;
#else
  (void)loop;
  return 0.0;
#endif
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
  const int threads = omp_get_max_threads();
  MachinePeak peak;
  std::ostringstream os;
  os << threads << " threads: ";
  if (const double avx512 = measure_flops(PeakLoop::kAvx512Fma); avx512 > 0) {
    peak.flops_per_s = avx512;
    os << "f32 AVX-512 FMA " << avx512 / 1e9 << " GFLOP/s";
  } else if (const double avx2 = measure_flops(PeakLoop::kAvx2Fma); avx2 > 0) {
    peak.flops_per_s = avx2;
    os << "f32 AVX2 FMA " << avx2 / 1e9 << " GFLOP/s";
  } else {  // no FMA unit worth measuring: 4 lanes x multiply + add at the nominal clock
    peak.flops_per_s = threads * cpu_ghz() * 1e9 * 8;
    os << "f32 " << peak.flops_per_s / 1e9 << " GFLOP/s (SSE, assumed)";
  }
  const double bf16 = measure_flops(PeakLoop::kAvx512Bf16);
  peak.bf16_flops_per_s = bf16 > 0 ? bf16 : peak.flops_per_s;
  os << ", bf16 " << (bf16 > 0 ? "vdpbf16ps " : "(widened to f32) ") << peak.bf16_flops_per_s / 1e9
     << " GFLOP/s (measured: register-only multiply-add loops on every thread)";
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
