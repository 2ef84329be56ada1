// The Llama 3 / PLM tokenizer: byte-level BPE exactly as tiktoken and HF tokenizers do it (spec/tokenizer.md
// §3): special tokens are cut out first, each plain segment is pre-tokenized by the regex, and each piece is
// encoded by rank-based BPE. Decoding maps ids back to bytes. Loading from files: data/tokenizer_loader.h.
// Thread safety: a Tokenizer is immutable once built; encode/decode may run concurrently from any threads.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "data/pretokenizer.h"
#include "data/vocab.h"

namespace plm::data {

struct BpeScratch;

struct EncodeOptions {
  // Recognise special-token text such as "<|eot_id|>" (HF's default and PLM's allowed_special="all"). Off:
  // the text is encoded literally, e.g. to keep user input from injecting turn markers.
  bool allow_special = true;
  bool add_bos = false;  // prepend bos_id(), as HF does with add_special_tokens=True
};

struct DecodeOptions {
  bool skip_special_tokens = false;  // drop special ids instead of writing their text
};

// The names of the special tokens with a role; the Tokenizer resolves them to ids when it is built.
struct SpecialTokenRoles {
  std::string bos = "<|begin_of_text|>";
  std::string eos = "<|eot_id|>";  // spec/tokenizer.md §1.3: HF's tokenizer eos; generation also stops on 128001
  std::string pad = "<|end_of_text|>";
};

class Tokenizer {
 public:
  explicit Tokenizer(Vocab vocab, const SpecialTokenRoles& roles = {});
  Tokenizer(Tokenizer&&) noexcept = default;
  Tokenizer& operator=(Tokenizer&&) noexcept = default;
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // Any bytes are accepted: invalid UTF-8 is encoded byte by byte, so decode(encode(x)) == x always.
  std::vector<int32_t> encode(std::string_view text, const EncodeOptions& options = {}) const;
  // Appends to *ids; lets a caller build one sequence from several segments (e.g. a chat template).
  void encode_append(std::string_view text, const EncodeOptions& options, std::vector<int32_t>* ids) const;

  // The concatenated bytes of the tokens, which need not be valid UTF-8 (a cut may fall inside a
  // character). An id outside the vocabulary is an InvalidArgument error naming it and its position.
  absl::StatusOr<std::string> decode(std::span<const int32_t> ids, const DecodeOptions& options = {}) const;

  // The id of the special token with this exact text ("<|image|>"), if there is one.
  std::optional<int32_t> special_token_id(std::string_view text) const;
  bool is_special(int32_t id) const { return vocab_.is_special(id); }
  // The bytes of one token (a special token's text); empty for an id outside the vocabulary.
  std::string_view token_bytes(int32_t id) const { return vocab_.token_bytes(id); }

  std::optional<int32_t> bos_id() const { return bos_id_; }
  std::optional<int32_t> eos_id() const { return eos_id_; }
  std::optional<int32_t> pad_id() const { return pad_id_; }
  int32_t vocab_size() const { return vocab_.size(); }  // 128,256 for Llama 3 / PLM
  const Vocab& vocab() const { return vocab_; }

 private:
  void encode_plain(std::string_view text, PieceSplitter& splitter, BpeScratch& scratch,
                    std::vector<int32_t>* ids) const;
  // The leftmost (then longest) special token in text[from..]; {text.size(), 0, -1} when there is none.
  struct SpecialMatch {
    size_t pos;
    size_t length;
    int32_t id;
  };
  SpecialMatch find_special(std::string_view text, size_t from) const;

  Vocab vocab_;
  Pretokenizer pretokenizer_;
  std::optional<int32_t> bos_id_, eos_id_, pad_id_;
  bool special_first_byte_[256] = {};       // bytes that start some special token
  std::vector<size_t> special_lengths_;     // distinct special-token lengths, longest first
};

}  // namespace plm::data
