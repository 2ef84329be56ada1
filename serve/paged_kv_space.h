// PagedKvSpace: the engine's KV room as blocks of a model::PagedKvCache pool sized in bytes. A sequence is
// admitted with a block table holding only its first chunk's blocks and grows block by block as it runs, so
// memory follows the tokens actually in flight, not every request's maximum; when a chunk's blocks cannot be
// found, grow() says no and the scheduler preempts. Blocks promised by grow() are taken from the pool by the
// step's forward, which therefore always finds them. A slot is the cache's sequence id.
// Prefix caching (PrefixCache): after every step a sequence's newly full blocks are registered by content hash;
// admission starts a sequence with the cached blocks of its longest matching prefix; blocks that only the cache
// still holds are evicted, least recently released first, when grow() needs room. Not thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "serve/kv_space.h"

namespace plm::serve {

class PagedKvSpace final : public KvSpace {
 public:
  // A pool of the blocks of block_tokens tokens that `bytes` hold, for up to max_num_seqs sequences of at most
  // min(context_tokens, the pool) tokens.
  static absl::StatusOr<std::unique_ptr<PagedKvSpace>> create(const model::PlmModel& model,
                                                              const KvSpaceConfig& config, int max_num_seqs,
                                                              int64_t context_tokens);

  int64_t cached_prefix(Sequence& seq) override;
  std::optional<int> admit(const Sequence& seq, int64_t cached, int64_t length) override;
  bool grow(int slot, int64_t length) override;
  void computed(int slot, Sequence& seq) override;
  void release(int slot) override;
  KvUsage usage() const override;
  int64_t max_sequence_tokens() const override { return max_sequence_tokens_; }
  model::KvCache& cache() override { return *cache_; }

 private:
  PagedKvSpace(std::unique_ptr<model::PagedKvCache> cache, bool prefix_caching, int max_num_seqs,
               int64_t max_sequence_tokens);
  // Whether the pool has `blocks` free blocks now (after evicting cached ones as needed).
  bool make_free(int64_t blocks);
  // Drops the slot's sequence from the cache; its cached blocks may become evictable.
  void free_sequence(int slot);

  std::unique_ptr<model::PagedKvCache> cache_;
  std::unique_ptr<PrefixCache> prefix_;  // null without prefix caching
  int64_t max_sequence_tokens_;
  std::vector<int> free_slots_;      // a stack: the most recently freed slot is reused first
  std::vector<int64_t> pending_;     // (max_num_seqs) blocks grow() promised the slot for the coming step
  std::vector<int64_t> registered_;  // (max_num_seqs) leading blocks of the slot known to the prefix cache
  int64_t num_pending_ = 0;          // sum of pending_: the pool keeps at least this many blocks free
};

}  // namespace plm::serve
