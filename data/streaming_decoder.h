// Incremental detokenization for generation: tokens arrive one at a time, and text is released only up to
// the last complete UTF-8 character, because one character may span tokens (🚀 = 9468 248 222, where 9468
// is the bytes F0 9F). Bytes that can never become valid UTF-8 are released as they are.
// One instance per sequence; not thread-safe. The Tokenizer must outlive it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "data/tokenizer.h"

namespace plm::data {

// How many bytes at the end of `bytes` are the start of a UTF-8 character still missing its last byte(s):
// 0..3. Those are what a stream must hold back.
size_t incomplete_utf8_suffix_length(std::string_view bytes);

class StreamingDecoder {
 public:
  explicit StreamingDecoder(const Tokenizer& tokenizer, const DecodeOptions& options = {});
  StreamingDecoder(const StreamingDecoder&) = delete;
  StreamingDecoder& operator=(const StreamingDecoder&) = delete;

  // The bytes that became complete with this token (often empty). An unknown id is an error and leaves the
  // state unchanged.
  absl::StatusOr<std::string> push(int32_t id);

  // The held-back bytes, at the end of the stream (an incomplete character, as the model produced it).
  std::string finish();

 private:
  const Tokenizer& tokenizer_;
  DecodeOptions options_;
  std::string pending_;  // at most 3 bytes: an incomplete character
};

}  // namespace plm::data
