// Fuzzes the Llama 3 tokenizer (the fixture's tokenizer.json, 128,256 tokens) with the two properties it
// promises: any bytes encode, and decode(encode(x)) == x, with and without special-token recognition ('0' / '1'
// as the first byte); and any id sequence ('2': each 4 bytes of the rest a little-endian word mapped onto the
// vocabulary and a few ids past either end) decodes to an error or to bytes the streaming decoder reproduces.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/check.h"
#include "data/streaming_decoder.h"
#include "data/tokenizer.h"
#include "data/tokenizer_loader.h"
#include "fuzz/fuzz_scratch.h"

namespace {

using plm::data::Tokenizer;

const Tokenizer& tokenizer() {
  static const Tokenizer* const t = [] {
    auto loaded = plm::data::load_tokenizer(plm::fuzz::source_path("tests/fixtures/models/tokenizer"));
    PLM_CHECK(loaded.ok()) << loaded.status();
    return new Tokenizer(*std::move(loaded));
  }();
  return *t;
}

void check_round_trip(std::string_view text, bool allow_special) {
  const std::vector<int32_t> ids = tokenizer().encode(text, {.allow_special = allow_special});
  const auto decoded = tokenizer().decode(ids);
  PLM_CHECK(decoded.ok()) << decoded.status();
  PLM_CHECK(*decoded == text) << "decode(encode(x)) != x for " << text.size() << " bytes";
}

// Ids in [-8, vocab + 8): mostly real tokens, some unknown on either side.
std::vector<int32_t> ids_of(std::string_view bytes) {
  std::vector<int32_t> ids;
  const int64_t span = tokenizer().vocab_size() + 16;
  for (size_t i = 0; i + 3 < bytes.size(); i += 4) {
    uint32_t value = 0;
    for (int b = 3; b >= 0; --b) value = (value << 8) | static_cast<uint8_t>(bytes[i + b]);
    ids.push_back(static_cast<int32_t>(value % span - 8));
  }
  return ids;
}

void check_decode(const std::vector<int32_t>& ids, bool skip_special) {
  const plm::data::DecodeOptions options{.skip_special_tokens = skip_special};
  const auto whole = tokenizer().decode(ids, options);
  plm::data::StreamingDecoder stream(tokenizer(), options);
  std::string streamed;
  for (const int32_t id : ids) {
    const auto piece = stream.push(id);
    if (!piece.ok()) {
      PLM_CHECK(!whole.ok()) << "the streaming decoder refused id " << id << " that decode accepted";
      return;
    }
    streamed += *piece;
  }
  streamed += stream.finish();
  PLM_CHECK(whole.ok()) << "decode refused ids the streaming decoder accepted: " << whole.status();
  PLM_CHECK(streamed == *whole) << "streamed and whole decodes differ";
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  (void)tokenizer();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 3) {
    case 0:
    case 1:
      check_round_trip(rest, data[0] % 3 == 0);
      return 0;
    case 2:
      for (const bool skip_special : {false, true}) check_decode(ids_of(rest), skip_special);
      return 0;
  }
  return 0;
}
