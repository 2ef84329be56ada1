// TextOutput on the real Llama 3 tokenizer: deltas concatenate to the full decode, never split a UTF-8 character,
// never leak the start of a stop string that later completes, and the text ends before the first stop string.
#include "serve/text_output.h"

#include <gtest/gtest.h>

#include "tests/serve/serve_fixture.h"

namespace plm::serve {
namespace {

const data::Tokenizer& tokenizer() { return testing::tiny_model().dir.tokenizer; }

struct Streamed {
  std::vector<std::string> deltas;
  std::string text;
  bool stopped = false;
};

Streamed stream(const std::string& reply, const std::vector<std::string>& stop, bool finish = true) {
  TextOutput out(tokenizer(), stop);
  Streamed s;
  for (int32_t id : tokenizer().encode(reply, {.allow_special = true, .add_bos = false})) {
    const absl::StatusOr<bool> stopped = out.push(id);
    EXPECT_TRUE(stopped.ok());
    s.deltas.push_back(out.take_delta());
    if (*stopped) {
      s.stopped = true;
      break;
    }
  }
  if (!s.stopped && finish) s.stopped = out.finish();
  s.deltas.push_back(out.take_delta());
  for (const std::string& d : s.deltas) s.text += d;
  EXPECT_EQ(s.text, out.text());
  return s;
}

bool valid_utf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<uint8_t>(s[i]);
    const size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k) {
      if ((static_cast<uint8_t>(s[i + k]) & 0xC0) != 0x80) return false;
    }
    i += n;
  }
  return true;
}

TEST(TextOutput, DeltasAreWholeCharactersAndAddUpToTheReply) {
  const std::string reply = "Launch 🚀 at dawn: café, naïve, 日本語.";
  const Streamed s = stream(reply, {});
  EXPECT_EQ(s.text, reply);
  EXPECT_FALSE(s.stopped);
  for (const std::string& d : s.deltas) EXPECT_TRUE(valid_utf8(d)) << d;
}

TEST(TextOutput, EndsBeforeTheFirstStopStringAndNeverStreamsItsStart) {
  const Streamed s = stream("The answer is 42. END of story. END again", {"END", "never"});
  EXPECT_TRUE(s.stopped);
  EXPECT_EQ(s.text, "The answer is 42. ");
  for (const std::string& d : s.deltas) EXPECT_EQ(d.find('E'), std::string::npos) << d;
}

TEST(TextOutput, HeldBackPrefixIsReleasedWhenTheStopStringDoesNotComplete) {
  // " ST" looks like the start of " STOP" until "ART" arrives.
  const Streamed s = stream("Ready ST ART now", {" STOP"});
  EXPECT_FALSE(s.stopped);
  EXPECT_EQ(s.text, "Ready ST ART now");
}

TEST(TextOutput, StopStringAcrossTokensAndSpecialTokensSkipped) {
  const Streamed s = stream("Hello<|eot_id|> wor" "ld!", {"o wo"});
  EXPECT_TRUE(s.stopped);
  EXPECT_EQ(s.text, "Hell");
}

}  // namespace
}  // namespace plm::serve
