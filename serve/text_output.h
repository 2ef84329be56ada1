// TextOutput: one reply's generated tokens as the text a client receives. Tokens are detokenized incrementally
// with special tokens skipped (as `plm generate` prints them); the text ends before the first stop string, and
// what a stream releases never splits a UTF-8 character nor contains the start of a stop string that later
// tokens might complete. Not thread-safe (one per sequence, on the engine thread). The Tokenizer must outlive it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "data/streaming_decoder.h"
#include "data/tokenizer.h"

namespace plm::serve {

class TextOutput {
 public:
  TextOutput(const data::Tokenizer& tokenizer, std::vector<std::string> stop);
  TextOutput(const TextOutput&) = delete;
  TextOutput& operator=(const TextOutput&) = delete;

  // Adds one generated token. True when the text now holds a stop string: it has been cut before the first
  // one, everything left is released, and nothing more may be pushed.
  absl::StatusOr<bool> push(int32_t id);
  // The reply ended without a stop string (EOS, token limit): releases the held-back bytes, including an
  // incomplete character as the model produced it. Returns true if a stop string completed after all.
  bool finish();
  // The text released since the last call.
  std::string take_delta();
  const std::string& text() const { return text_; }

 private:
  // Cuts text_ at the first stop string that ends at or after `new_from`; true if there was one.
  bool cut_at_stop(size_t new_from);
  // The length of the longest suffix of text_ that is a proper prefix of a stop string.
  size_t stop_prefix_suffix() const;

  data::StreamingDecoder decoder_;
  std::vector<std::string> stop_;
  std::string text_;
  size_t released_ = 0;  // text_[0, released_) is final
  size_t taken_ = 0;     // text_[0, taken_) went out through take_delta
  bool done_ = false;
};

}  // namespace plm::serve
