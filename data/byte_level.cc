// The byte <-> code point tables of GPT-2's bytes_to_unicode and the UTF-8 plumbing around them.
#include "data/byte_level.h"

#include <array>
#include <cstdint>

namespace plm::data {
namespace {

// Bytes that stand for themselves; the other 68 map, in increasing order, to U+0100..U+0143.
constexpr bool is_printable(int byte) {
  return (byte >= 0x21 && byte <= 0x7E) || (byte >= 0xA1 && byte <= 0xAC) || (byte >= 0xAE && byte <= 0xFF);
}

struct Tables {
  std::array<uint16_t, 256> code_point_of_byte{};
  std::array<int16_t, 0x144> byte_of_code_point{};  // -1 where the code point is not in the alphabet
};

constexpr Tables make_tables() {
  Tables tables;
  for (auto& byte : tables.byte_of_code_point) byte = -1;
  int next_extra = 0x100;
  for (int byte = 0; byte < 256; ++byte) {
    const int code_point = is_printable(byte) ? byte : next_extra++;
    tables.code_point_of_byte[byte] = static_cast<uint16_t>(code_point);
    tables.byte_of_code_point[code_point] = static_cast<int16_t>(byte);
  }
  return tables;
}

constexpr Tables kTables = make_tables();

}  // namespace

std::string bytes_to_byte_level(std::string_view bytes) {
  std::string text;
  text.reserve(bytes.size() * 2);
  for (const char c : bytes) {
    const uint16_t code_point = kTables.code_point_of_byte[static_cast<uint8_t>(c)];
    if (code_point < 0x80) {
      text += static_cast<char>(code_point);
    } else {  // every code point of the alphabet is below U+0800: two UTF-8 bytes
      text += static_cast<char>(0xC0 | (code_point >> 6));
      text += static_cast<char>(0x80 | (code_point & 0x3F));
    }
  }
  return text;
}

std::optional<std::string> byte_level_to_bytes(std::string_view text) {
  std::string bytes;
  bytes.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const uint8_t lead = static_cast<uint8_t>(text[i]);
    int code_point;
    if (lead < 0x80) {
      code_point = lead;
      i += 1;
    } else if ((lead & 0xE0) == 0xC0 && i + 1 < text.size() && (static_cast<uint8_t>(text[i + 1]) & 0xC0) == 0x80) {
      code_point = (lead & 0x1F) << 6 | (static_cast<uint8_t>(text[i + 1]) & 0x3F);
      if (code_point < 0x80) return std::nullopt;  // overlong encoding
      i += 2;
    } else {
      return std::nullopt;  // longer sequences encode code points beyond the alphabet
    }
    if (code_point >= static_cast<int>(kTables.byte_of_code_point.size()) || kTables.byte_of_code_point[code_point] < 0) {
      return std::nullopt;
    }
    bytes += static_cast<char>(kTables.byte_of_code_point[code_point]);
  }
  return bytes;
}

}  // namespace plm::data
