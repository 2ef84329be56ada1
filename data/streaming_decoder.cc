// StreamingDecoder and the UTF-8 completeness test it relies on.
#include "data/streaming_decoder.h"

#include <utility>

namespace plm::data {
namespace {

// The length of the UTF-8 sequence a lead byte starts, or 0 if it cannot start one (RFC 3629).
size_t sequence_length(uint8_t lead) {
  if (lead >= 0xC2 && lead <= 0xDF) return 2;
  if (lead >= 0xE0 && lead <= 0xEF) return 3;
  if (lead >= 0xF0 && lead <= 0xF4) return 4;
  return 0;
}

// The valid range of the byte after `lead`; narrower than 80..BF for these leads (no overlongs, surrogates,
// or code points above U+10FFFF).
bool valid_second_byte(uint8_t lead, uint8_t second) {
  switch (lead) {
    case 0xE0: return second >= 0xA0 && second <= 0xBF;
    case 0xED: return second >= 0x80 && second <= 0x9F;
    case 0xF0: return second >= 0x90 && second <= 0xBF;
    case 0xF4: return second >= 0x80 && second <= 0x8F;
    default: return second >= 0x80 && second <= 0xBF;
  }
}

}  // namespace

size_t incomplete_utf8_suffix_length(std::string_view bytes) {
  // An incomplete character is a lead byte followed by fewer continuation bytes than it needs (at most 3).
  for (size_t back = 1; back <= 3 && back <= bytes.size(); ++back) {
    const uint8_t byte = static_cast<uint8_t>(bytes[bytes.size() - back]);
    if ((byte & 0xC0) == 0x80) continue;  // a continuation byte: keep looking for the lead
    const size_t needed = sequence_length(byte);
    if (needed <= back) return 0;  // complete, ASCII, or not a lead at all
    if (back >= 2 && !valid_second_byte(byte, static_cast<uint8_t>(bytes[bytes.size() - back + 1]))) return 0;
    return back;
  }
  return 0;
}

StreamingDecoder::StreamingDecoder(const Tokenizer& tokenizer, const DecodeOptions& options)
    : tokenizer_(tokenizer), options_(options) {}

absl::StatusOr<std::string> StreamingDecoder::push(int32_t id) {
  const int32_t ids[] = {id};
  absl::StatusOr<std::string> bytes = tokenizer_.decode(ids, options_);
  if (!bytes.ok()) return bytes.status();
  std::string text = std::exchange(pending_, std::string()) + *bytes;
  const size_t hold = incomplete_utf8_suffix_length(text);
  pending_ = text.substr(text.size() - hold);
  text.resize(text.size() - hold);
  return text;
}

std::string StreamingDecoder::finish() { return std::exchange(pending_, std::string()); }

}  // namespace plm::data
