// The Llama 3 pre-tokenizer: splits text into the pieces that BPE encodes separately, using the regex of
// spec/tokenizer.md §3.3 compiled once with PCRE2 (UTF + UCP, JIT). Invalid UTF-8 never matches the regex;
// each such gap becomes a piece of its own, so any byte string round-trips through encode/decode.
// Thread safety: a Pretokenizer is immutable after construction and may be shared; each PieceSplitter
// owns its match state and belongs to one thread.
#pragma once

#include <cstddef>
#include <memory>
#include <string_view>

typedef struct pcre2_real_code_8 pcre2_code_8;
typedef struct pcre2_real_match_data_8 pcre2_match_data_8;

namespace plm::data {

// The upstream pattern as it appears in tiktoken, HF tokenizer.json and llama-models.
inline constexpr std::string_view kLlama3PretokenizerPattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

class Pretokenizer {
 public:
  Pretokenizer();  // compiles kLlama3PretokenizerPattern; a failure is a bug (PLM_CHECK)
  ~Pretokenizer();
  Pretokenizer(Pretokenizer&&) noexcept;
  Pretokenizer& operator=(Pretokenizer&&) noexcept;
  Pretokenizer(const Pretokenizer&) = delete;
  Pretokenizer& operator=(const Pretokenizer&) = delete;

  const pcre2_code_8* code() const { return code_; }
  bool jit() const { return jit_; }

 private:
  pcre2_code_8* code_ = nullptr;
  bool jit_ = false;  // JIT-compiled (not on every CPU); then matching may skip pcre2_match's option checks
};

// Walks the pieces of one text: `while (splitter.next(&piece)) ...`. Pieces are views into the text,
// non-empty, contiguous and in order; together they cover the text exactly.
class PieceSplitter {
 public:
  explicit PieceSplitter(const Pretokenizer& pretokenizer);
  ~PieceSplitter();
  PieceSplitter(const PieceSplitter&) = delete;
  PieceSplitter& operator=(const PieceSplitter&) = delete;

  void reset(std::string_view text);
  bool next(std::string_view* piece);

 private:
  const pcre2_code_8* code_;
  bool jit_;
  pcre2_match_data_8* match_data_;
  std::string_view text_;
  size_t pos_ = 0;
  size_t match_begin_ = 0;  // the next regex match, found ahead of time when a gap precedes it
  size_t match_end_ = 0;
};

}  // namespace plm::data
