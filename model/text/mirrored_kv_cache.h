// MirroredKvCache: a KvCache that keeps no bookkeeping of its own: before each forward it is told the block
// table of every chunk's sequence (what KvCache::tables_for says on the rank that owns the bookkeeping). The
// other ranks of a tensor-parallel engine hold one (serve/step_mirror.h): their share of the keys and values
// lands in the same blocks as the leader's, without replaying its allocation, prefix sharing or eviction.
// Not thread-safe.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "model/text/kv_cache.h"

namespace plm::model {

class MirroredKvCache final : public KvCache {
 public:
  // num_blocks blocks of block_size tokens (a dense cache: one block of max_len per slot).
  MirroredKvCache(const KvLayout& layout, int64_t num_blocks, int64_t block_size, int64_t max_len, DType dtype,
                  Device device);

  int64_t max_len() const override { return max_len_; }
  // The tables of the next batch, in its chunk order.
  void set_tables(const TokenBatch& batch, std::vector<std::vector<int32_t>> tables);
  // Every chunk has a table that covers it, with blocks inside the pool.
  absl::Status check(const TokenBatch& batch) const override;
  std::vector<std::vector<int32_t>> tables_for(const TokenBatch& batch) const override;

 private:
  std::span<const int32_t> reserve(const SequenceChunk& chunk) override;

  int64_t max_len_;
  absl::flat_hash_map<SequenceId, std::vector<int32_t>> tables_;  // of the next batch's sequences
};

}  // namespace plm::model
