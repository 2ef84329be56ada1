// RankTable: the hash function and insertion.
#include "data/rank_table.h"

#include "core/check.h"

namespace plm::data {

RankTable::RankTable(size_t num_keys) : capacity_(num_keys) {
  size_t num_slots = 16;
  while (num_slots < 2 * num_keys) num_slots *= 2;
  slots_.resize(num_slots);
  mask_ = num_slots - 1;
}

// Multiply-xorshift over 8-byte chunks; the keys are fixed and not adversarial, so speed wins over strength.
uint64_t RankTable::hash(uint64_t head, std::string_view key) {
  constexpr uint64_t kMul = 0x9E3779B97F4A7C15ull;
  uint64_t h = (head ^ (key.size() * 0xFF51AFD7ED558CCDull)) * kMul;
  for (size_t pos = 8; pos < key.size(); pos += 8) {
    uint64_t chunk = 0;
    std::memcpy(&chunk, key.data() + pos, key.size() - pos < 8 ? key.size() - pos : 8);
    h = (h ^ (h >> 31) ^ chunk) * kMul;
  }
  return h ^ (h >> 32);
}

bool RankTable::insert(std::string_view key, int32_t rank) {
  PLM_CHECK(!key.empty() && key.size() <= kMaxKeyBytes) << "RankTable key of " << key.size() << " bytes";
  PLM_CHECK(rank >= 0 && rank <= kMaxRank) << "RankTable rank " << rank;
  if (find(key) != kNotFound) return false;
  PLM_CHECK_LT(size_, capacity_) << "RankTable is full";
  const uint64_t head = load_head(key);
  uint64_t i = hash(head, key) & mask_;
  while (slots_[i].length_and_rank != 0) i = (i + 1) & mask_;
  Slot& slot = slots_[i];
  slot.head = head;
  slot.tail_offset = static_cast<uint32_t>(tails_.size());
  slot.length_and_rank = static_cast<uint32_t>(key.size()) | static_cast<uint32_t>(rank) << 8;
  if (key.size() > 8) tails_.insert(tails_.end(), key.begin() + 8, key.end());
  ++size_;
  return true;
}

}  // namespace plm::data
