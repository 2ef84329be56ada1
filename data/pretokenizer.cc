// PCRE2 compilation of the Llama 3 pre-tokenizer regex and the piece iterator over its matches.
#include "data/pretokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <string>
#include <utility>

#include "core/check.h"

namespace plm::data {
namespace {

// spec/tokenizer.md §3.3: `\s` must be exactly Unicode White_Space (25 code points). PCRE2's UCP `\s` is
// property Z plus TAB..CR, which lacks U+0085 (NEL), so the class is spelled out.
constexpr std::string_view kWhiteSpace =
    R"(\t-\r\x{20}\x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000})";

// kLlama3PretokenizerPattern with every `\s`/`\S` replaced by the explicit White_Space class.
std::string pcre2_pattern() {
  const std::string ws(kWhiteSpace);
  return std::string(R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^)") + ws +
         R"(\p{L}\p{N}]+[\r\n]*|[)" + ws + R"(]*[\r\n]+|[)" + ws + R"(]+(?![^)" + ws + R"(])|[)" + ws + "]+";
}

}  // namespace

Pretokenizer::Pretokenizer() {
  const std::string pattern = pcre2_pattern();
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  // MATCH_INVALID_UTF: invalid UTF-8 is skipped by the matcher instead of failing the whole match.
  code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                        PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF | PCRE2_NO_AUTO_CAPTURE, &error_code,
                        &error_offset, nullptr);
  if (code_ == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error_code, message, sizeof(message));
    PLM_CHECK(false) << "pre-tokenizer regex does not compile at offset " << error_offset << ": "
                     << reinterpret_cast<const char*>(message);
  }
  // Without JIT (an unsupported CPU) matching falls back to the interpreter: slower, same pieces.
  jit_ = pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE) == 0;
}

Pretokenizer::~Pretokenizer() { pcre2_code_free(code_); }

Pretokenizer::Pretokenizer(Pretokenizer&& other) noexcept
    : code_(std::exchange(other.code_, nullptr)), jit_(std::exchange(other.jit_, false)) {}

Pretokenizer& Pretokenizer::operator=(Pretokenizer&& other) noexcept {
  std::swap(code_, other.code_);
  std::swap(jit_, other.jit_);
  return *this;
}

PieceSplitter::PieceSplitter(const Pretokenizer& pretokenizer)
    : code_(pretokenizer.code()), jit_(pretokenizer.jit()), match_data_(pcre2_match_data_create(1, nullptr)) {
  PLM_CHECK(match_data_ != nullptr) << "pcre2_match_data_create failed";
}

PieceSplitter::~PieceSplitter() { pcre2_match_data_free(match_data_); }

void PieceSplitter::reset(std::string_view text) {
  text_ = text;
  pos_ = 0;
  match_begin_ = match_end_ = 0;
}

bool PieceSplitter::next(std::string_view* piece) {
  if (pos_ >= text_.size()) return false;
  if (match_end_ <= pos_) {
    const auto subject = reinterpret_cast<PCRE2_SPTR>(text_.data());
    const int rc = jit_ ? pcre2_jit_match(code_, subject, text_.size(), pos_, 0, match_data_, nullptr)
                        : pcre2_match(code_, subject, text_.size(), pos_, 0, match_data_, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) {
      match_begin_ = match_end_ = text_.size();
    } else {
      PLM_CHECK(rc > 0) << "pcre2_match failed with code " << rc;
      const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(match_data_);
      match_begin_ = ovector[0];
      match_end_ = ovector[1];
      PLM_CHECK(match_end_ > match_begin_) << "pre-tokenizer regex matched an empty string";
    }
  }
  // A gap before the match (invalid UTF-8 only) is a piece of its own, as in HF's Split(Isolated).
  const size_t end = pos_ < match_begin_ ? match_begin_ : match_end_;
  *piece = text_.substr(pos_, end - pos_);
  pos_ = end;
  return true;
}

}  // namespace plm::data
