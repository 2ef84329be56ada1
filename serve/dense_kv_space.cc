#include "serve/dense_kv_space.h"

#include <algorithm>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "core/check.h"

namespace plm::serve {

absl::StatusOr<std::unique_ptr<DenseKvSpace>> DenseKvSpace::create(const model::PlmModel& model, int64_t bytes,
                                                                   int max_num_seqs, int64_t context_tokens) {
  const int64_t per_token =
      static_cast<int64_t>(model::PagedKvCache::block_bytes(model.kv_layout(), 1, model.kv_dtype()));
  const int64_t slot_tokens = std::min(context_tokens, bytes / (max_num_seqs * per_token));
  if (slot_tokens < kMinSequenceTokens) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the dense KV cache of ", bytes, " bytes holds ", bytes / per_token, " tokens (", per_token,
        " bytes each): ", slot_tokens, " per sequence for ", max_num_seqs,
        " sequences; give more bytes or fewer sequences (at least ", kMinSequenceTokens, " tokens each)"));
  }
  return std::unique_ptr<DenseKvSpace>(new DenseKvSpace(model.make_cache(max_num_seqs, slot_tokens)));
}

DenseKvSpace::DenseKvSpace(std::unique_ptr<model::DenseKvCache> cache)
    : cache_(std::move(cache)), reserved_(cache_->num_slots(), 0), filled_(cache_->num_slots(), 0) {
  for (int slot = cache_->num_slots() - 1; slot >= 0; --slot) free_slots_.push_back(slot);
}

std::optional<int> DenseKvSpace::admit(const Sequence& seq, int64_t cached, int64_t length) {
  PLM_CHECK_LE(seq.max_total_tokens, cache_->max_len()) << "the engine accepted a sequence longer than a slot";
  PLM_CHECK(cached == 0 && length <= seq.max_total_tokens) << seq.id << ": " << cached << " cached, " << length;
  if (free_slots_.empty()) return std::nullopt;
  const int slot = free_slots_.back();
  free_slots_.pop_back();
  reserved_[slot] = seq.max_total_tokens;
  return slot;
}

bool DenseKvSpace::grow(int slot, int64_t length) {
  PLM_CHECK_LE(length, reserved_[slot]) << "slot " << slot << " grows beyond its reservation";
  return true;
}

void DenseKvSpace::computed(int slot, Sequence& seq) { filled_[slot] = seq.num_computed; }

void DenseKvSpace::release(int slot) {
  PLM_CHECK(reserved_[slot] > 0) << "slot " << slot << " released twice";
  reserved_[slot] = 0;
  filled_[slot] = 0;
  free_slots_.push_back(slot);
}

KvUsage DenseKvSpace::usage() const {
  const int64_t slots = cache_->num_slots(), free = static_cast<int64_t>(free_slots_.size());
  return {.capacity_tokens = slots * cache_->max_len(),
          .reserved_tokens = std::accumulate(reserved_.begin(), reserved_.end(), int64_t{0}),
          .filled_tokens = std::accumulate(filled_.begin(), filled_.end(), int64_t{0}),
          .num_sequences = static_cast<int>(slots - free),
          .bytes = static_cast<int64_t>(cache_->nbytes()),
          .block_tokens = cache_->max_len(),
          .num_blocks = slots,
          .blocks_used = slots - free,
          .blocks_cached = 0,
          .blocks_free = free,
          .prefix_cache = {}};
}

}  // namespace plm::serve
