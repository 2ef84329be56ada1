// Conformance of the Llama 3 / PLM tokenizer with the committed vectors (llama.cpp's 44, the 53 edge cases, the 5
// PLM chat prompts) through both file formats, and the encode/decode options.
#include "data/tokenizer.h"

#include <gtest/gtest.h>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "data/tokenizer_loader.h"
#include "tests/data/tokenizer_test_util.h"

namespace plm::data {
namespace {

using ::plm::testing::llama3_tokenizer;
using ::plm::testing::read_tokenizer_cases;

std::string escaped(std::string_view text) { return absl::CHexEscape(absl::string_view(text.data(), text.size())); }

// Every case encodes to its ids and decodes back to its text; returns the number of cases.
size_t expect_vectors(const Tokenizer& tokenizer, std::string_view stem) {
  const std::vector<::plm::testing::TokenizerCase> cases = read_tokenizer_cases(stem);
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::vector<int32_t> ids = tokenizer.encode(cases[i].text);
    EXPECT_EQ(ids, cases[i].ids) << stem << " case " << i << ": \"" << escaped(cases[i].text) << "\"";
    EXPECT_EQ(tokenizer.decode(ids).value(), cases[i].text) << stem << " case " << i;
  }
  return cases.size();
}

TEST(TokenizerTest, LlamaCppVectors) { EXPECT_EQ(expect_vectors(llama3_tokenizer(), "ggml-vocab-llama-bpe.gguf"), 44u); }

TEST(TokenizerTest, EdgeCaseVectors) { EXPECT_EQ(expect_vectors(llama3_tokenizer(), "llama3_edge_cases"), 53u); }

TEST(TokenizerTest, PlmChatPromptVectors) { EXPECT_EQ(expect_vectors(llama3_tokenizer(), "plm_chat_prompts"), 5u); }

// The HF loader on the real vocabulary: a tokenizer.json written from the committed HF vocabulary and merges
// gives the same ids as tokenizer.model, with merges in either spelling.
TEST(TokenizerTest, HfTokenizerJsonPassesTheSameVectors) {
  for (const bool merges_as_pairs : {false, true}) {
    SCOPED_TRACE(merges_as_pairs ? "merges as pairs" : "merges as strings");
    const std::filesystem::path dir = ::plm::testing::fresh_temp_dir("hf_llama3");
    ::plm::testing::write_llama3_tokenizer_json(dir, merges_as_pairs);
    absl::StatusOr<Tokenizer> tokenizer = load_tokenizer(dir);
    ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
    EXPECT_EQ(tokenizer->vocab_size(), 128256);
    EXPECT_EQ(tokenizer->bos_id(), 128000);
    EXPECT_EQ(expect_vectors(*tokenizer, "ggml-vocab-llama-bpe.gguf"), 44u);
    EXPECT_EQ(expect_vectors(*tokenizer, "llama3_edge_cases"), 53u);
    EXPECT_EQ(expect_vectors(*tokenizer, "plm_chat_prompts"), 5u);
    for (int32_t id = 0; id < 128256; ++id) ASSERT_EQ(tokenizer->token_bytes(id), llama3_tokenizer().token_bytes(id)) << id;
  }
}

TEST(TokenizerTest, PlmSpecialTokens) {
  const Tokenizer& tokenizer = llama3_tokenizer();
  EXPECT_EQ(tokenizer.vocab_size(), 128256);
  EXPECT_EQ(tokenizer.special_token_id("<|begin_of_text|>"), 128000);
  EXPECT_EQ(tokenizer.special_token_id("<|image|>"), 128002);
  EXPECT_EQ(tokenizer.special_token_id("<|video|>"), 128003);
  EXPECT_EQ(tokenizer.special_token_id("<|reserved_special_token_2|>"), 128004);
  EXPECT_EQ(tokenizer.special_token_id("<|start_header_id|>"), 128006);
  EXPECT_EQ(tokenizer.special_token_id("<|eot_id|>"), 128009);
  EXPECT_EQ(tokenizer.special_token_id("<|reserved_special_token_5|>"), 128010);
  EXPECT_EQ(tokenizer.special_token_id("<|reserved_special_token_250|>"), 128255);
  // spec/tokenizer.md §1.2: Llama 3.1 names that PLM does not have.
  EXPECT_EQ(tokenizer.special_token_id("<|reserved_special_token_0|>"), std::nullopt);
  EXPECT_EQ(tokenizer.special_token_id("<|reserved_special_token_251|>"), std::nullopt);
  EXPECT_EQ(tokenizer.special_token_id("<|python_tag|>"), std::nullopt);
  EXPECT_EQ(tokenizer.bos_id(), 128000);
  EXPECT_EQ(tokenizer.eos_id(), 128009);
  EXPECT_EQ(tokenizer.pad_id(), 128001);
  EXPECT_TRUE(tokenizer.is_special(128255));
  EXPECT_FALSE(tokenizer.is_special(127999));
}

TEST(TokenizerTest, SpecialTokensAsPlainText) {
  const Tokenizer& tokenizer = llama3_tokenizer();
  const EncodeOptions literal{.allow_special = false};
  // spec/tokenizer.md §3.2: "<|image|" -> 27 91 1843 91; the closing "|>" is 91 29 ("<|IMAGE|>" case).
  EXPECT_EQ(tokenizer.encode("<|image|>", literal), (std::vector<int32_t>{27, 91, 1843, 91, 29}));
  EXPECT_EQ(tokenizer.encode("<|image|>"), (std::vector<int32_t>{128002}));
  const std::string text = "<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>";
  const std::vector<int32_t> ids = tokenizer.encode(text, literal);
  for (const int32_t id : ids) EXPECT_LT(id, 128000);
  EXPECT_EQ(tokenizer.decode(ids).value(), text);
}

TEST(TokenizerTest, AddBosAndAppend) {
  const Tokenizer& tokenizer = llama3_tokenizer();
  EXPECT_EQ(tokenizer.encode("Hello world", {.add_bos = true}), (std::vector<int32_t>{128000, 9906, 1917}));
  std::vector<int32_t> ids = {1};
  tokenizer.encode_append("Hello", {}, &ids);
  tokenizer.encode_append(" world", {}, &ids);
  EXPECT_EQ(ids, (std::vector<int32_t>{1, 9906, 1917}));
  EXPECT_TRUE(tokenizer.encode("").empty());
}

TEST(TokenizerTest, DecodeSpecialTokensAndUnknownIds) {
  const Tokenizer& tokenizer = llama3_tokenizer();
  const std::vector<int32_t> ids = {128000, 9906, 1917, 128009};
  EXPECT_EQ(tokenizer.decode(ids).value(), "<|begin_of_text|>Hello world<|eot_id|>");
  EXPECT_EQ(tokenizer.decode(ids, {.skip_special_tokens = true}).value(), "Hello world");

  for (const int32_t bad : {128256, -1}) {
    const std::vector<int32_t> with_bad = {9906, bad};
    const absl::StatusOr<std::string> decoded = tokenizer.decode(with_bad);
    ASSERT_FALSE(decoded.ok());
    EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(decoded.status().message().find(absl::StrCat("token id ", bad, " at position 1")), absl::string_view::npos)
        << decoded.status();
  }
  // Characters split across tokens come back only when decoded together (🚀 = 9468 248 222).
  EXPECT_EQ(tokenizer.decode(std::vector<int32_t>{9468, 248, 222}).value(), "\xF0\x9F\x9A\x80");
}

// Invalid UTF-8 cannot reach HF; here it is encoded byte by byte and round-trips.
TEST(TokenizerTest, InvalidUtf8RoundTrips) {
  const Tokenizer& tokenizer = llama3_tokenizer();
  for (const std::string& text : {std::string("\xFF"), std::string("a\xC3"), std::string("\xE2\x82 x"),
                                 std::string("abc\x80\x80 def"), std::string("\xF0\x9F\x9A hello \xED\xA0\x80"),
                                 std::string("ok \xC3\xA9t\xC3\xA9 \xC3(")}) {
    const std::vector<int32_t> ids = tokenizer.encode(text);
    EXPECT_EQ(tokenizer.decode(ids).value(), text) << escaped(text);
  }
  // An invalid byte is a piece of its own: 'a', 0xFF (byte token 187, spec/tokenizer.md §3.4), 'b'.
  EXPECT_EQ(tokenizer.encode("a\xFF" "b"), (std::vector<int32_t>{64, 187, 65}));
}

// Long runs of one character class become one long piece each; the heap merge keeps them fast.
TEST(TokenizerTest, LongRunsRoundTrip) {
  const Tokenizer& tokenizer = llama3_tokenizer();
  for (const std::string& text : {std::string(100000, ' ') + "x", std::string(50000, '='), std::string(20000, '\n'),
                                 std::string(30000, '7'), "a" + std::string(40000, '!') + "b"}) {
    const std::vector<int32_t> ids = tokenizer.encode(text);
    EXPECT_EQ(tokenizer.decode(ids).value(), text);
    EXPECT_LT(ids.size(), text.size() / 2);
  }
}

}  // namespace
}  // namespace plm::data
