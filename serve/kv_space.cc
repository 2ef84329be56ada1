#include "serve/kv_space.h"

#include <algorithm>
#include <numeric>

#include "core/check.h"

namespace plm::serve {

int64_t kv_bytes_per_token(const model::PlmModel& model) {
  const model::TextConfig& text = model.config().text;
  const int64_t layers = static_cast<int64_t>(model.decoder().weights().layers.size());
  const int64_t kv_heads = text.num_kv_heads / model.parallel().tp_size();
  return layers * 2 * kv_heads * text.head_dim * static_cast<int64_t>(dtype_size(model.dtype()));
}

DenseKvSpace::DenseKvSpace(const model::PlmModel& model, int num_slots, int64_t slot_tokens)
    : cache_(model.make_cache(num_slots, slot_tokens)), reserved_(num_slots, 0), filled_(num_slots, 0) {
  for (int slot = num_slots - 1; slot >= 0; --slot) free_slots_.push_back(slot);
}

std::optional<int> DenseKvSpace::admit(const Sequence& seq) {
  PLM_CHECK_LE(seq.max_total_tokens, cache_->max_len()) << "the engine accepted a sequence longer than a slot";
  if (free_slots_.empty()) return std::nullopt;
  const int slot = free_slots_.back();
  free_slots_.pop_back();
  reserved_[slot] = seq.max_total_tokens;
  return slot;
}

bool DenseKvSpace::grow(int slot, int64_t length) {
  PLM_CHECK_LE(length, reserved_[slot]) << "slot " << slot << " grows beyond its reservation";
  filled_[slot] = std::max(filled_[slot], length);
  return true;
}

void DenseKvSpace::release(int slot) {
  PLM_CHECK(reserved_[slot] > 0) << "slot " << slot << " released twice";
  reserved_[slot] = 0;
  filled_[slot] = 0;
  free_slots_.push_back(slot);
}

KvUsage DenseKvSpace::usage() const {
  return {.capacity_tokens = static_cast<int64_t>(cache_->num_slots()) * cache_->max_len(),
          .reserved_tokens = std::accumulate(reserved_.begin(), reserved_.end(), int64_t{0}),
          .filled_tokens = std::accumulate(filled_.begin(), filled_.end(), int64_t{0}),
          .num_sequences = cache_->num_slots() - static_cast<int>(free_slots_.size()),
          .bytes = static_cast<int64_t>(cache_->nbytes())};
}

}  // namespace plm::serve
