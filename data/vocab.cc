// Vocab::create: validates the token lists and lays the bytes out by id for decoding.
#include "data/vocab.h"

#include <algorithm>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace plm::data {
namespace {

std::string quoted(std::string_view bytes) {
  return absl::StrCat("'", absl::CHexEscape(absl::string_view(bytes.data(), bytes.size())), "'");
}

}  // namespace

absl::StatusOr<Vocab> Vocab::create(std::vector<TokenEntry> regular, std::vector<TokenEntry> special) {
  Vocab vocab;
  int32_t max_id = -1;
  for (const auto* list : {&regular, &special}) {
    for (const TokenEntry& token : *list) {
      if (token.id < 0) return absl::InvalidArgumentError(absl::StrCat("token ", quoted(token.bytes), " has negative id ", token.id));
      if (token.bytes.empty()) return absl::InvalidArgumentError(absl::StrCat("token id ", token.id, " is empty"));
      max_id = std::max(max_id, token.id);
    }
  }
  const int32_t size = max_id + 1;
  std::vector<const TokenEntry*> by_id(size, nullptr);
  for (const auto* list : {&regular, &special}) {
    for (const TokenEntry& token : *list) {
      if (by_id[token.id] != nullptr) {
        return absl::InvalidArgumentError(absl::StrCat("token id ", token.id, " is used twice: ",
                                                       quoted(by_id[token.id]->bytes), " and ", quoted(token.bytes)));
      }
      by_id[token.id] = &token;
    }
  }

  vocab.ranks_ = RankTable(regular.size());
  for (const TokenEntry& token : regular) {
    if (token.bytes.size() > RankTable::kMaxKeyBytes || token.id > RankTable::kMaxRank) {
      return absl::InvalidArgumentError(absl::StrCat("token ", quoted(token.bytes), " (id ", token.id, ", ",
                                                     token.bytes.size(), " bytes) exceeds the limits of ",
                                                     RankTable::kMaxKeyBytes, " bytes and id ", RankTable::kMaxRank));
    }
    if (!vocab.ranks_.insert(token.bytes, token.id)) {
      return absl::InvalidArgumentError(absl::StrCat("token ", quoted(token.bytes), " appears twice (ids ",
                                                     vocab.ranks_.find(token.bytes), " and ", token.id, ")"));
    }
  }
  for (int byte = 0; byte < 256; ++byte) {
    if (vocab.rank(std::string(1, static_cast<char>(byte))) == kNoToken) {
      return absl::InvalidArgumentError(absl::StrCat("no token for the single byte 0x", absl::Hex(byte, absl::kZeroPad2),
                                                     ": byte-level BPE could not encode it"));
    }
  }
  for (const TokenEntry& token : special) {
    if (!vocab.special_ids_.emplace(token.bytes, token.id).second) {
      return absl::InvalidArgumentError(absl::StrCat("special token ", quoted(token.bytes), " appears twice"));
    }
  }

  vocab.offsets_.reserve(size + 1);
  vocab.offsets_.push_back(0);
  vocab.is_special_.assign(size, false);
  for (int32_t id = 0; id < size; ++id) {
    if (by_id[id] != nullptr) vocab.arena_ += by_id[id]->bytes;  // holes (unused ids) stay empty
    vocab.offsets_.push_back(static_cast<uint32_t>(vocab.arena_.size()));
  }
  for (const TokenEntry& token : special) vocab.is_special_[token.id] = true;
  std::sort(special.begin(), special.end(), [](const TokenEntry& a, const TokenEntry& b) { return a.id < b.id; });
  vocab.special_ = std::move(special);
  return vocab;
}

int32_t Vocab::special_id(std::string_view text) const {
  const auto it = special_ids_.find(absl::string_view(text.data(), text.size()));
  return it == special_ids_.end() ? kNoToken : it->second;
}

uint64_t Vocab::fingerprint() const {
  uint64_t h = 1469598103934665603ull;
  const auto mix = [&h](unsigned char c) {
    h ^= c;
    h *= 1099511628211ull;
  };
  for (int32_t id = 0; id < size(); ++id) {
    const std::string_view bytes = token_bytes(id);
    const uint64_t length_and_flag = bytes.size() * 2 + (is_special(id) ? 1 : 0);  // keeps the tokens apart
    for (int shift = 0; shift < 64; shift += 8) mix(static_cast<unsigned char>(length_and_flag >> shift));
    for (const char c : bytes) mix(static_cast<unsigned char>(c));
  }
  return h;
}

}  // namespace plm::data
