// The token table of a byte-level BPE tokenizer: byte strings <-> ids for the mergeable (regular) tokens,
// whose id is also their BPE rank, and the added special tokens, which are matched as literal text.
// Immutable after create(); safe to share between threads.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "data/rank_table.h"

namespace plm::data {

struct TokenEntry {
  std::string bytes;  // raw bytes for a regular token; the literal text (e.g. "<|eot_id|>") for a special one
  int32_t id = 0;
};

class Vocab {
 public:
  // Fails on a negative or repeated id, a repeated or empty string, a regular token beyond RankTable's limits
  // (255 bytes, id 2^24 - 1), or a missing single-byte token (byte-level BPE must be able to spell any byte).
  // Messages name the offending token; callers prefix the file name.
  static absl::StatusOr<Vocab> create(std::vector<TokenEntry> regular, std::vector<TokenEntry> special);

  static constexpr int32_t kNoToken = -1;

  // The BPE rank (= id) of a regular token, or kNoToken. The hot path of encoding.
  int32_t rank(std::string_view bytes) const { return ranks_.find(bytes); }

  // The id of a special token given its exact text, or kNoToken.
  int32_t special_id(std::string_view text) const;

  bool contains(int32_t id) const { return id >= 0 && id < size() && offsets_[id] != offsets_[id + 1]; }
  bool is_special(int32_t id) const { return contains(id) && is_special_[id]; }

  // The bytes of token `id` (a special token's text); empty when !contains(id).
  std::string_view token_bytes(int32_t id) const {
    return contains(id) ? std::string_view(arena_.data() + offsets_[id], offsets_[id + 1] - offsets_[id])
                        : std::string_view();
  }

  // One past the largest id (128,256 for Llama 3 with its special tokens).
  int32_t size() const { return static_cast<int32_t>(offsets_.size()) - 1; }
  int32_t num_regular() const { return static_cast<int32_t>(ranks_.size()); }
  static_assert(kNoToken == RankTable::kNotFound);
  const std::vector<TokenEntry>& special_tokens() const { return special_; }

  // FNV-1a 64 over every id's bytes and special flag, in id order: equal for the same vocabulary whichever
  // file it was loaded from (tokenizer.model or tokenizer.json). A fingerprint, not a security boundary.
  uint64_t fingerprint() const;

 private:
  RankTable ranks_;                                          // regular token bytes -> rank
  absl::flat_hash_map<std::string, int32_t> special_ids_;    // special token text -> id
  std::vector<TokenEntry> special_;                          // in id order
  std::string arena_;                                        // all token bytes, by id
  std::vector<uint32_t> offsets_;                            // (size + 1): token id's bytes are
                                                             // arena_[offsets_[id], offsets_[id + 1])
  std::vector<bool> is_special_;                             // (size)
};

}  // namespace plm::data
