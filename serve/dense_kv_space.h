// DenseKvSpace: model::DenseKvCache's fixed slots, each as long as the longest sequence the engine accepts, so a
// sequence reserves its whole length at admission and never needs to grow (and is never preempted). The cache
// plm had before the paged one, without prefix caching; kept for comparison (`plm serve --kv-cache dense`).
// Not thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "serve/kv_space.h"

namespace plm::serve {

class DenseKvSpace final : public KvSpace {
 public:
  // max_num_seqs slots sharing `bytes`, each of min(context_tokens, what its share holds) tokens.
  static absl::StatusOr<std::unique_ptr<DenseKvSpace>> create(const model::PlmModel& model, int64_t bytes,
                                                              int max_num_seqs, int64_t context_tokens);

  int64_t cached_prefix(Sequence&) override { return 0; }
  std::optional<int> admit(const Sequence& seq, int64_t cached, int64_t length) override;
  bool grow(int slot, int64_t length) override;
  void computed(int slot, Sequence& seq) override;
  void release(int slot) override;
  KvUsage usage() const override;
  int64_t max_sequence_tokens() const override { return cache_->max_len(); }
  model::KvCache& cache() override { return *cache_; }

 private:
  explicit DenseKvSpace(std::unique_ptr<model::DenseKvCache> cache);

  std::unique_ptr<model::DenseKvCache> cache_;
  std::vector<int> free_slots_;             // a stack: the most recently freed slot is reused first
  std::vector<int64_t> reserved_, filled_;  // per slot; 0 when free
};

}  // namespace plm::serve
