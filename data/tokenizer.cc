// Tokenizer: special-token splitting, the encode pipeline (regex pieces -> BPE) and decoding.
#include "data/tokenizer.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "data/bpe.h"

namespace plm::data {
namespace {

std::optional<int32_t> find_special_id(const Vocab& vocab, std::string_view text) {
  const int32_t id = vocab.special_id(text);
  return id == Vocab::kNoToken ? std::nullopt : std::optional<int32_t>(id);
}

}  // namespace

Tokenizer::Tokenizer(Vocab vocab, const SpecialTokenRoles& roles)
    : vocab_(std::move(vocab)),
      bos_id_(find_special_id(vocab_, roles.bos)),
      eos_id_(find_special_id(vocab_, roles.eos)),
      pad_id_(find_special_id(vocab_, roles.pad)) {
  for (const TokenEntry& special : vocab_.special_tokens()) {
    special_first_byte_[static_cast<uint8_t>(special.bytes[0])] = true;
    special_lengths_.push_back(special.bytes.size());
  }
  std::sort(special_lengths_.begin(), special_lengths_.end(), std::greater<>());
  special_lengths_.erase(std::unique(special_lengths_.begin(), special_lengths_.end()), special_lengths_.end());
}

// spec/tokenizer.md §3.2: HF scans leftmost-longest (Aho-Corasick); trying each length at each candidate
// start gives the same matches, and candidates are rare because few bytes can start a special token.
Tokenizer::SpecialMatch Tokenizer::find_special(std::string_view text, size_t from) const {
  for (size_t pos = from; pos < text.size(); ++pos) {
    if (!special_first_byte_[static_cast<uint8_t>(text[pos])]) continue;
    for (const size_t length : special_lengths_) {
      if (length > text.size() - pos) continue;
      const int32_t id = vocab_.special_id(text.substr(pos, length));
      if (id != Vocab::kNoToken) return {pos, length, id};
    }
  }
  return {text.size(), 0, Vocab::kNoToken};
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, const EncodeOptions& options) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 4 + 2);  // ~4 bytes per token on English prose
  encode_append(text, options, &ids);
  return ids;
}

void Tokenizer::encode_append(std::string_view text, const EncodeOptions& options, std::vector<int32_t>* ids) const {
  if (options.add_bos && bos_id_) ids->push_back(*bos_id_);
  PieceSplitter splitter(pretokenizer_);
  BpeScratch scratch;
  if (!options.allow_special) {
    encode_plain(text, splitter, scratch, ids);
    return;
  }
  // Each segment between special tokens is pre-tokenized on its own: the regex never sees across one.
  size_t pos = 0;
  while (pos < text.size()) {
    const SpecialMatch match = find_special(text, pos);
    encode_plain(text.substr(pos, match.pos - pos), splitter, scratch, ids);
    if (match.id == Vocab::kNoToken) break;
    ids->push_back(match.id);
    pos = match.pos + match.length;
  }
}

void Tokenizer::encode_plain(std::string_view text, PieceSplitter& splitter, BpeScratch& scratch,
                             std::vector<int32_t>* ids) const {
  splitter.reset(text);
  std::string_view piece;
  while (splitter.next(&piece)) bpe_encode(vocab_, piece, scratch, ids);
}

absl::StatusOr<std::string> Tokenizer::decode(std::span<const int32_t> ids, const DecodeOptions& options) const {
  std::string bytes;
  for (size_t i = 0; i < ids.size(); ++i) {
    const int32_t id = ids[i];
    if (!vocab_.contains(id)) {
      return absl::InvalidArgumentError(absl::StrCat("token id ", id, " at position ", i,
                                                     " is not in the vocabulary (ids 0..", vocab_.size() - 1, ")"));
    }
    if (options.skip_special_tokens && vocab_.is_special(id)) continue;
    const std::string_view token = vocab_.token_bytes(id);
    bytes.append(token.data(), token.size());
  }
  return bytes;
}

std::optional<int32_t> Tokenizer::special_token_id(std::string_view text) const {
  return find_special_id(vocab_, text);
}

}  // namespace plm::data
