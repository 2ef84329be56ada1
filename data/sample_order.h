// Which samples each optimizer step uses (issue 18). Step k (1-based) of global batch G uses the global
// sample indices g = (k - 1) * G + j, j < G; g maps to epoch e = g / N and position p = g % N of the N
// samples, and to sample p (no shuffle) or permutation(seed, e)[p] (shuffle). So epochs wrap, a step may
// straddle two epochs, and resuming at step k needs nothing but k.
// The permutation is portable (reproducible from this comment in any language):
//   mix(z)  = one splitmix64 step from state z: z += 0x9E3779B97F4A7C15;
//             z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9; z = (z ^ (z >> 27)) * 0x94D049BB133111EB; z ^ (z >> 31)
//   key     = mix(mix(seed) ^ e)               (all arithmetic mod 2^64)
//   draw t  = mix(key + t * 0x9E3779B97F4A7C15), t = 0, 1, 2, ... through the epoch
//   below(n): r = next draw, redrawn while r >= 2^64 - (2^64 mod n); returns r mod n (unbiased)
//   Fisher-Yates: p = [0 .. N-1]; for i = N-1 down to 1: swap(p[i], p[below(i + 1)])
// Thread safety: a SampleOrder caches the last epoch's permutation; use one per thread.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"

namespace plm::data {

struct SampleOrderConfig {
  int64_t num_samples = 0;   // N, the dataset's size
  int64_t global_batch = 0;  // G = batch.global
  bool shuffle = false;      // data.shuffle
  uint64_t seed = 0;         // seed
};

// The permutation of epoch `epoch` as described above.
std::vector<int64_t> epoch_permutation(int64_t num_samples, uint64_t seed, int64_t epoch);

class SampleOrder {
 public:
  // Errors name the config key: data set size and batch.global must be positive.
  static absl::StatusOr<SampleOrder> create(const SampleOrderConfig& config);

  // The dataset index of global sample index g >= 0.
  int64_t sample_at(int64_t global_index);
  // The G dataset indices of optimizer step `step` >= 1, in order.
  std::vector<int64_t> step_samples(int64_t step);
  // The epoch (0-based) that step `step`'s first sample belongs to.
  int64_t epoch_of_step(int64_t step) const;

 private:
  explicit SampleOrder(const SampleOrderConfig& config) : config_(config) {}
  SampleOrderConfig config_;
  int64_t cached_epoch_ = -1;
  std::vector<int64_t> permutation_;  // of cached_epoch_
};

}  // namespace plm::data
