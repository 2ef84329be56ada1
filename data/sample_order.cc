#include "data/sample_order.h"

#include <numeric>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/check.h"

namespace plm::data {
namespace {

constexpr uint64_t kGamma = 0x9E3779B97F4A7C15ull;

uint64_t mix(uint64_t z) {
  z += kGamma;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// The counter-based draws of one epoch.
class EpochDraws {
 public:
  EpochDraws(uint64_t seed, int64_t epoch) : key_(mix(mix(seed) ^ static_cast<uint64_t>(epoch))) {}
  // Uniform in [0, n) by rejection: values at or above the largest multiple of n below 2^64 are redrawn.
  uint64_t below(uint64_t n) {
    const uint64_t remainder = (0 - n) % n;  // 2^64 mod n
    for (;;) {
      const uint64_t r = mix(key_ + counter_++ * kGamma);
      if (remainder == 0 || r < 0 - remainder) return r % n;
    }
  }

 private:
  uint64_t key_;
  uint64_t counter_ = 0;
};

}  // namespace

std::vector<int64_t> epoch_permutation(int64_t num_samples, uint64_t seed, int64_t epoch) {
  PLM_CHECK(num_samples > 0 && epoch >= 0) << num_samples << " samples, epoch " << epoch;
  std::vector<int64_t> p(static_cast<size_t>(num_samples));
  std::iota(p.begin(), p.end(), int64_t{0});
  EpochDraws draws(seed, epoch);
  for (int64_t i = num_samples - 1; i >= 1; --i) {
    std::swap(p[i], p[draws.below(static_cast<uint64_t>(i + 1))]);
  }
  return p;
}

absl::StatusOr<SampleOrder> SampleOrder::create(const SampleOrderConfig& config) {
  if (config.num_samples <= 0) return absl::InvalidArgumentError("data.train: the training data has no samples");
  if (config.global_batch <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("batch.global must be positive (got ", config.global_batch, ")"));
  }
  return SampleOrder(config);
}

int64_t SampleOrder::sample_at(int64_t global_index) {
  PLM_CHECK(global_index >= 0) << global_index;
  const int64_t epoch = global_index / config_.num_samples, position = global_index % config_.num_samples;
  if (!config_.shuffle) return position;
  if (epoch != cached_epoch_) {
    permutation_ = epoch_permutation(config_.num_samples, config_.seed, epoch);
    cached_epoch_ = epoch;
  }
  return permutation_[position];
}

std::vector<int64_t> SampleOrder::step_samples(int64_t step) {
  PLM_CHECK(step >= 1) << "steps are 1-based, got " << step;
  std::vector<int64_t> samples(static_cast<size_t>(config_.global_batch));
  const int64_t first = (step - 1) * config_.global_batch;
  for (int64_t j = 0; j < config_.global_batch; ++j) samples[j] = sample_at(first + j);
  return samples;
}

int64_t SampleOrder::epoch_of_step(int64_t step) const {
  PLM_CHECK(step >= 1) << "steps are 1-based, got " << step;
  return (step - 1) * config_.global_batch / config_.num_samples;
}

}  // namespace plm::data
