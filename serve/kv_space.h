// KvSpace: the engine's one seam to the KV cache: which sequence holds which part of it. The scheduler asks it
// for room when it admits a sequence and before every chunk grows one; when it says no, the scheduler preempts
// (the victim gives its room back and later recomputes). The model runner reads and writes the cache itself.
//
// DenseKvSpace is the cache that exists today: model::KvCache's fixed slots, each as long as the longest sequence
// the engine accepts, so a sequence reserves its whole length at admission and never needs to grow. A paged
// space (blocks from a pool sized in bytes, shared prefix blocks) implements the same calls and may refuse grow().
// Not thread-safe: the engine thread owns it; usage() is a value for metrics.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "model/plm_model.h"
#include "model/text/kv_cache.h"
#include "serve/sequence.h"

namespace plm::serve {

struct KvUsage {
  int64_t capacity_tokens = 0;  // tokens the whole cache holds
  int64_t reserved_tokens = 0;  // tokens promised to running sequences (what admission counts)
  int64_t filled_tokens = 0;    // tokens actually computed into the cache
  int num_sequences = 0;        // sequences holding room
  int64_t bytes = 0;            // device memory of the cache
};

class KvSpace {
 public:
  virtual ~KvSpace() = default;
  // Room for `seq` (up to seq.max_total_tokens tokens): its slot, or nullopt when there is none now.
  virtual std::optional<int> admit(const Sequence& seq) = 0;
  // Room in `slot` for `length` tokens in all; false when the space is exhausted (the caller preempts).
  virtual bool grow(int slot, int64_t length) = 0;
  virtual void release(int slot) = 0;
  virtual KvUsage usage() const = 0;
  // The longest sequence (prompt + new tokens) it can ever hold.
  virtual int64_t max_sequence_tokens() const = 0;
};

class DenseKvSpace final : public KvSpace {
 public:
  // num_slots slots of slot_tokens tokens each, in the model's dtype on its device.
  DenseKvSpace(const model::PlmModel& model, int num_slots, int64_t slot_tokens);

  std::optional<int> admit(const Sequence& seq) override;
  bool grow(int slot, int64_t length) override;
  void release(int slot) override;
  KvUsage usage() const override;
  int64_t max_sequence_tokens() const override { return cache_->max_len(); }

  model::KvCache& cache() { return *cache_; }

 private:
  std::unique_ptr<model::DenseKvCache> cache_;
  std::vector<int> free_slots_;          // a stack: the most recently freed slot is reused first
  std::vector<int64_t> reserved_, filled_;  // per slot; 0 when free
};

// Bytes of keys and values one token takes in this rank's cache.
int64_t kv_bytes_per_token(const model::PlmModel& model);

}  // namespace plm::serve
