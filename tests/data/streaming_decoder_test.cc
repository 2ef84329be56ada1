// Streaming decode releases exactly the bytes of a whole decode, never splitting a UTF-8 character.
#include "data/streaming_decoder.h"

#include <gtest/gtest.h>

#include "tests/data/tokenizer_test_util.h"

namespace plm::data {
namespace {

using ::plm::testing::llama3_tokenizer;

TEST(StreamingDecoderTest, IncompleteSuffixLength) {
  EXPECT_EQ(incomplete_utf8_suffix_length(""), 0u);
  EXPECT_EQ(incomplete_utf8_suffix_length("abc"), 0u);
  EXPECT_EQ(incomplete_utf8_suffix_length("a\xF0"), 1u);
  EXPECT_EQ(incomplete_utf8_suffix_length("a\xF0\x9F"), 2u);
  EXPECT_EQ(incomplete_utf8_suffix_length("a\xF0\x9F\x9A"), 3u);
  EXPECT_EQ(incomplete_utf8_suffix_length("a\xF0\x9F\x9A\x80"), 0u);
  EXPECT_EQ(incomplete_utf8_suffix_length("\xC3"), 1u);
  EXPECT_EQ(incomplete_utf8_suffix_length("\xC3\xA9"), 0u);
  EXPECT_EQ(incomplete_utf8_suffix_length("\xE2\x82"), 2u);
  // Never valid, so nothing to wait for: a stray continuation, C0/C1/F5+ leads, a surrogate's second byte.
  EXPECT_EQ(incomplete_utf8_suffix_length("\x80"), 0u);
  EXPECT_EQ(incomplete_utf8_suffix_length("\xC0"), 0u);
  EXPECT_EQ(incomplete_utf8_suffix_length("\xF5"), 0u);
  EXPECT_EQ(incomplete_utf8_suffix_length("\xED\xA0"), 0u);
  EXPECT_EQ(incomplete_utf8_suffix_length("\xE0\x80"), 0u);
}

TEST(StreamingDecoderTest, HoldsBackASplitCharacter) {
  StreamingDecoder decoder(llama3_tokenizer());
  EXPECT_EQ(decoder.push(9906).value(), "Hello");
  EXPECT_EQ(decoder.push(9468).value(), "");  // F0 9F
  EXPECT_EQ(decoder.push(248).value(), "");   // 9A
  EXPECT_EQ(decoder.push(222).value(), "\xF0\x9F\x9A\x80");
  EXPECT_EQ(decoder.push(9468).value(), "");
  EXPECT_EQ(decoder.finish(), "\xF0\x9F");  // the stream ended inside a character
  EXPECT_EQ(decoder.finish(), "");
}

TEST(StreamingDecoderTest, ErrorsAndSpecialTokens) {
  StreamingDecoder decoder(llama3_tokenizer(), {.skip_special_tokens = true});
  EXPECT_EQ(decoder.push(9468).value(), "");
  EXPECT_FALSE(decoder.push(200000).ok());
  EXPECT_EQ(decoder.push(128009).value(), "");  // skipped, and the held bytes stay held
  EXPECT_EQ(decoder.push(248).value(), "");
  EXPECT_EQ(decoder.push(222).value(), "\xF0\x9F\x9A\x80");
}

// Over every test vector: the chunks join to the whole decode, and each chunk is complete UTF-8.
TEST(StreamingDecoderTest, ChunksJoinToTheWholeDecode) {
  const Tokenizer& tokenizer = llama3_tokenizer();
  int num_cases = 0;
  for (const char* stem : {"ggml-vocab-llama-bpe.gguf", "llama3_edge_cases", "plm_chat_prompts"}) {
    for (const auto& test_case : ::plm::testing::read_tokenizer_cases(stem)) {
      StreamingDecoder decoder(tokenizer);
      std::string joined;
      for (const int32_t id : test_case.ids) {
        const std::string chunk = decoder.push(id).value();
        EXPECT_EQ(incomplete_utf8_suffix_length(chunk), 0u);
        joined += chunk;
      }
      EXPECT_EQ(decoder.finish(), "");  // every vector is valid UTF-8
      EXPECT_EQ(joined, test_case.text);
      ++num_cases;
    }
  }
  EXPECT_EQ(num_cases, 44 + 53 + 5);
}

}  // namespace
}  // namespace plm::data
