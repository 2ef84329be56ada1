#include "serve/text_output.h"

#include <algorithm>

#include "core/check.h"

namespace plm::serve {

TextOutput::TextOutput(const data::Tokenizer& tokenizer, std::vector<std::string> stop)
    : decoder_(tokenizer, {.skip_special_tokens = true}), stop_(std::move(stop)) {
  std::erase_if(stop_, [](const std::string& s) { return s.empty(); });
}

absl::StatusOr<bool> TextOutput::push(int32_t id) {
  PLM_CHECK(!done_) << "TextOutput::push after the text ended";
  absl::StatusOr<std::string> piece = decoder_.push(id);
  if (!piece.ok()) return piece.status();
  const size_t old_size = text_.size();
  text_ += *piece;
  if (cut_at_stop(old_size)) return true;
  released_ = std::max(released_, text_.size() - stop_prefix_suffix());
  return false;
}

bool TextOutput::finish() {
  if (done_) return false;
  const size_t old_size = text_.size();
  text_ += decoder_.finish();
  const bool stopped = cut_at_stop(old_size);
  released_ = text_.size();
  done_ = true;
  return stopped;
}

std::string TextOutput::take_delta() {
  std::string delta = text_.substr(taken_, released_ - taken_);
  taken_ = released_;
  return delta;
}

bool TextOutput::cut_at_stop(size_t new_from) {
  size_t first = std::string::npos;
  for (const std::string& s : stop_) {
    // Before this piece no stop string was complete, so a match ends inside the new bytes.
    const size_t from = new_from >= s.size() ? new_from - s.size() + 1 : 0;
    first = std::min(first, text_.find(s, from));
  }
  if (first == std::string::npos) return false;
  text_.resize(first);
  released_ = text_.size();
  done_ = true;
  return true;
}

size_t TextOutput::stop_prefix_suffix() const {
  size_t longest = 0;
  for (const std::string& s : stop_) {
    for (size_t n = std::min(s.size() - 1, text_.size()); n > longest; --n) {
      if (text_.compare(text_.size() - n, n, s, 0, n) == 0) {
        longest = n;
        break;
      }
    }
  }
  return longest;
}

}  // namespace plm::serve
