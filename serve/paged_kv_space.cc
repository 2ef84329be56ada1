#include "serve/paged_kv_space.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "core/check.h"

namespace plm::serve {

absl::StatusOr<std::unique_ptr<PagedKvSpace>> PagedKvSpace::create(const model::PlmModel& model,
                                                                   const KvSpaceConfig& config, int max_num_seqs,
                                                                   int64_t context_tokens) {
  const int64_t block_tokens = config.block_tokens, bytes = config.bytes;
  if (block_tokens < 1) return absl::InvalidArgumentError(absl::StrCat("KV block of ", block_tokens, " tokens"));
  const model::KvLayout layout = model.kv_layout();
  const size_t block_bytes = model::PagedKvCache::block_bytes(layout, block_tokens, model.kv_dtype());
  const int64_t num_blocks =
      model::PagedKvCache::blocks_for_bytes(layout, block_tokens, model.kv_dtype(), static_cast<size_t>(bytes));
  const int64_t max_tokens = std::min(context_tokens, num_blocks * block_tokens);
  if (max_tokens < kMinSequenceTokens) {
    return absl::InvalidArgumentError(absl::StrCat("the paged KV cache of ", bytes, " bytes holds ", num_blocks,
                                                   " blocks of ", block_tokens, " tokens (", block_bytes,
                                                   " bytes each): ", max_tokens, " tokens; give at least ",
                                                   kMinSequenceTokens, " tokens"));
  }
  std::unique_ptr<model::PagedKvCache> cache = model.make_paged_cache(
      {.block_size = block_tokens, .num_blocks = num_blocks, .max_sequence_len = max_tokens});
  return std::unique_ptr<PagedKvSpace>(
      new PagedKvSpace(std::move(cache), config.prefix_caching, max_num_seqs, max_tokens));
}

PagedKvSpace::PagedKvSpace(std::unique_ptr<model::PagedKvCache> cache, bool prefix_caching, int max_num_seqs,
                           int64_t max_sequence_tokens)
    : cache_(std::move(cache)),
      prefix_(prefix_caching ? std::make_unique<PrefixCache>(*cache_) : nullptr),
      max_sequence_tokens_(max_sequence_tokens),
      pending_(max_num_seqs, 0),
      registered_(max_num_seqs, 0) {
  for (int slot = max_num_seqs - 1; slot >= 0; --slot) free_slots_.push_back(slot);
}

bool PagedKvSpace::make_free(int64_t blocks) {
  return prefix_ ? prefix_->make_free(blocks) : cache_->num_free_blocks() >= blocks;
}

int64_t PagedKvSpace::cached_prefix(Sequence& seq) {
  if (!prefix_) return 0;
  const int64_t block = cache_->block_size();
  seq.hash_full_blocks(block);
  const size_t most = static_cast<size_t>((seq.num_tokens() - 1) / block);
  const std::span<const BlockHash> hashes(seq.block_hashes.data(), std::min(most, seq.block_hashes.size()));
  return static_cast<int64_t>(prefix_->match(hashes).size()) * block;
}

std::optional<int> PagedKvSpace::admit(const Sequence& seq, int64_t cached, int64_t length) {
  PLM_CHECK_LE(seq.max_total_tokens, max_sequence_tokens_) << "the engine accepted a sequence longer than the cache";
  if (free_slots_.empty()) return std::nullopt;
  const int slot = free_slots_.back();
  const int64_t cached_blocks = cached / cache_->block_size();
  std::vector<int32_t> prefix;
  if (cached_blocks > 0) {
    PLM_CHECK(prefix_ != nullptr && static_cast<int64_t>(seq.block_hashes.size()) >= cached_blocks) << seq.id;
    prefix = prefix_->match(std::span<const BlockHash>(seq.block_hashes).first(static_cast<size_t>(cached_blocks)));
  }
  PLM_CHECK_EQ(static_cast<int64_t>(prefix.size()) * cache_->block_size(), cached)
      << seq.id << ": the prefix cache changed since cached_prefix()";
  const absl::Status added = cache_->add_sequence(slot, prefix);
  PLM_CHECK(added.ok()) << added.message();
  if (prefix_) prefix_->acquire(prefix);
  registered_[slot] = cached_blocks;
  if (!grow(slot, length)) {
    free_sequence(slot);
    return std::nullopt;
  }
  free_slots_.pop_back();
  if (prefix_) prefix_->count_lookup(seq.num_tokens(), cached);
  return slot;
}

bool PagedKvSpace::grow(int slot, int64_t length) {
  const int64_t cached = cache_->length(slot);
  PLM_CHECK_GE(length, cached) << "slot " << slot;
  const int64_t needed = cache_->blocks_needed(slot, length - cached);
  if (needed <= pending_[slot]) return true;
  const int64_t extra = needed - pending_[slot];
  if (!make_free(num_pending_ + extra)) return false;
  pending_[slot] = needed;
  num_pending_ += extra;
  return true;
}

void PagedKvSpace::computed(int slot, Sequence& seq) {
  PLM_CHECK_EQ(cache_->length(slot), seq.num_computed) << seq.id;
  num_pending_ -= pending_[slot];
  pending_[slot] = 0;
  if (!prefix_) return;
  const int64_t full = seq.num_computed / cache_->block_size();
  if (full == registered_[slot]) return;
  seq.hash_full_blocks(cache_->block_size());
  const std::span<const int32_t> table = cache_->block_table(slot);
  for (int64_t b = registered_[slot]; b < full; ++b) prefix_->insert(seq.block_hashes[b], table[b]);
  registered_[slot] = full;
}

void PagedKvSpace::free_sequence(int slot) {
  num_pending_ -= pending_[slot];
  pending_[slot] = 0;
  registered_[slot] = 0;
  const std::vector<int32_t> table(cache_->block_table(slot).begin(), cache_->block_table(slot).end());
  cache_->free_sequence(slot);
  if (prefix_) prefix_->release(table);
}

void PagedKvSpace::release(int slot) {
  free_sequence(slot);
  free_slots_.push_back(slot);
}

KvUsage PagedKvSpace::usage() const {
  const int64_t block = cache_->block_size();
  const int num_sequences = static_cast<int>(pending_.size() - free_slots_.size());
  int64_t filled = 0;
  for (int slot = 0; slot < static_cast<int>(pending_.size()); ++slot) {
    if (cache_->contains(slot)) filled += cache_->length(slot);
  }
  const int64_t cached = prefix_ ? prefix_->num_evictable() : 0;
  const int64_t used = cache_->num_used_blocks() - cached + num_pending_;
  return {.capacity_tokens = cache_->num_blocks() * block,
          .reserved_tokens = used * block,
          .filled_tokens = filled,
          .num_sequences = num_sequences,
          .bytes = static_cast<int64_t>(cache_->nbytes()),
          .block_tokens = block,
          .num_blocks = cache_->num_blocks(),
          .blocks_used = used,
          .blocks_cached = cached,
          .blocks_free = cache_->num_free_blocks() - num_pending_,
          .prefix_cache = prefix_ ? prefix_->counters() : PrefixCacheCounters{}};
}

}  // namespace plm::serve
