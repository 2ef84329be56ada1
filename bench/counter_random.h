// Counter-based random numbers for benchmarks: value `index` of a stream depends only on (seed, stream,
// index), so random checkpoints and synthetic prompts do not depend on thread count or visiting order, and
// bench/hf_generate_bench.py reproduces the prompts bit for bit (it mirrors these functions; keep in step).
#pragma once

#include <cmath>
#include <cstdint>

namespace plm::bench {

// splitmix64's output function: a bijection of 64-bit words with full avalanche.
constexpr uint64_t mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

constexpr uint64_t stream_key(uint64_t seed, uint64_t stream) { return mix64(seed ^ mix64(stream)); }
constexpr uint64_t random_bits(uint64_t key, uint64_t index) { return mix64(key + index); }

// Uniform in [0, 1) from the top 24 bits: exact in float, and in Python as (bits >> 40) / 2**24.
constexpr float uniform_from_bits(uint64_t bits) {
  return static_cast<float>(bits >> 40) * (1.0f / 16777216.0f);
}

// Two independent standard normals from one 64-bit word (Box-Muller on two 24-bit uniforms; the
// first is shifted off zero so the log is finite).
inline void normal_pair_from_bits(uint64_t bits, float& z0, float& z1) {
  const float u1 = (static_cast<float>(bits >> 40) + 0.5f) * (1.0f / 16777216.0f);
  const float u2 = uniform_from_bits(bits << 24);
  const float radius = std::sqrt(-2.0f * std::log(u1));
  const float angle = 6.28318530717958647692f * u2;
  z0 = radius * std::cos(angle);
  z1 = radius * std::sin(angle);
}

}  // namespace plm::bench
