// GPT-2's byte-level alphabet (`bytes_to_unicode`), in which HF tokenizer.json files spell token bytes:
// each byte is one printable code point (spec/tokenizer.md §3.4), e.g. space -> "Ġ" (U+0120), '\n' -> "Ċ".
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace plm::data {

// Raw bytes -> their byte-level spelling (UTF-8).
std::string bytes_to_byte_level(std::string_view bytes);

// A byte-level spelling -> raw bytes; nullopt when the text is not valid UTF-8 or has a code point outside
// the 256-symbol alphabet.
std::optional<std::string> byte_level_to_bytes(std::string_view text);

}  // namespace plm::data
