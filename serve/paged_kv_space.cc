#include "serve/paged_kv_space.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "core/check.h"

namespace plm::serve {

absl::StatusOr<std::unique_ptr<PagedKvSpace>> PagedKvSpace::create(const model::PlmModel& model, int64_t bytes,
                                                                   int64_t block_tokens, int max_num_seqs,
                                                                   int64_t context_tokens) {
  if (block_tokens < 1) return absl::InvalidArgumentError(absl::StrCat("KV block of ", block_tokens, " tokens"));
  const model::KvLayout layout = model.kv_layout();
  const size_t block_bytes = model::PagedKvCache::block_bytes(layout, block_tokens, model.dtype());
  const int64_t num_blocks =
      model::PagedKvCache::blocks_for_bytes(layout, block_tokens, model.dtype(), static_cast<size_t>(bytes));
  const int64_t max_tokens = std::min(context_tokens, num_blocks * block_tokens);
  if (max_tokens < kMinSequenceTokens) {
    return absl::InvalidArgumentError(absl::StrCat("the paged KV cache of ", bytes, " bytes holds ", num_blocks,
                                                   " blocks of ", block_tokens, " tokens (", block_bytes,
                                                   " bytes each): ", max_tokens, " tokens; give at least ",
                                                   kMinSequenceTokens, " tokens"));
  }
  std::unique_ptr<model::PagedKvCache> cache = model.make_paged_cache(
      {.block_size = block_tokens, .num_blocks = num_blocks, .max_sequence_len = max_tokens});
  return std::unique_ptr<PagedKvSpace>(new PagedKvSpace(std::move(cache), max_num_seqs, max_tokens));
}

PagedKvSpace::PagedKvSpace(std::unique_ptr<model::PagedKvCache> cache, int max_num_seqs, int64_t max_sequence_tokens)
    : cache_(std::move(cache)), max_sequence_tokens_(max_sequence_tokens), pending_(max_num_seqs, 0) {
  for (int slot = max_num_seqs - 1; slot >= 0; --slot) free_slots_.push_back(slot);
}

bool PagedKvSpace::make_free(int64_t blocks) { return cache_->num_free_blocks() >= blocks; }

std::optional<int> PagedKvSpace::admit(const Sequence& seq, int64_t length) {
  PLM_CHECK_LE(seq.max_total_tokens, max_sequence_tokens_) << "the engine accepted a sequence longer than the cache";
  if (free_slots_.empty()) return std::nullopt;
  const int slot = free_slots_.back();
  const absl::Status added = cache_->add_sequence(slot);
  PLM_CHECK(added.ok()) << added.message();
  if (!grow(slot, length)) {
    cache_->free_sequence(slot);
    return std::nullopt;
  }
  free_slots_.pop_back();
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

void PagedKvSpace::computed(int slot, const Sequence& seq) {
  PLM_CHECK_EQ(cache_->length(slot), seq.num_computed) << seq.id;
  num_pending_ -= pending_[slot];
  pending_[slot] = 0;
}

void PagedKvSpace::release(int slot) {
  num_pending_ -= pending_[slot];
  pending_[slot] = 0;
  cache_->free_sequence(slot);
  free_slots_.push_back(slot);
}

KvUsage PagedKvSpace::usage() const {
  const int64_t block = cache_->block_size();
  const int num_sequences = static_cast<int>(pending_.size() - free_slots_.size());
  int64_t filled = 0;
  for (int slot = 0; slot < static_cast<int>(pending_.size()); ++slot) {
    if (cache_->contains(slot)) filled += cache_->length(slot);
  }
  const int64_t used = cache_->num_used_blocks() + num_pending_;
  return {.capacity_tokens = cache_->num_blocks() * block,
          .reserved_tokens = used * block,
          .filled_tokens = filled,
          .num_sequences = num_sequences,
          .bytes = static_cast<int64_t>(cache_->nbytes()),
          .block_tokens = block,
          .num_blocks = cache_->num_blocks(),
          .blocks_used = used,
          .blocks_free = cache_->num_free_blocks() - num_pending_};
}

}  // namespace plm::serve
