// Sampler: picks the next token from one row of f32 logits on the host. temperature 0 is greedy (the
// first maximal index, like torch.argmax); otherwise logits / temperature, then top-k, then top-p
// (HF's warper order), then a draw from the sequence's own seeded generator, so results do not depend on
// batch composition.
#pragma once

#include <cstdint>
#include <random>
#include <span>

namespace plm::model {

struct SamplingParams {
  float temperature = 0.0f;  // 0: greedy
  int top_k = 0;             // 0: off
  float top_p = 1.0f;        // 1: off
  uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(const SamplingParams& params) : params_(params), rng_(params.seed) {}
  int32_t sample(std::span<const float> logits);

 private:
  SamplingParams params_;
  std::mt19937_64 rng_;
};

}  // namespace plm::model
