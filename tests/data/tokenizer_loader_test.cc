// Loading tokenizers from tiktoken and HF files and from model directories, and the errors for bad files.
// The HF cases use a tiny hand-built tokenizer.json (256 bytes + "he", "ll", "hell" + two specials).
#include "data/tokenizer_loader.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "data/byte_level.h"
#include "data/pretokenizer.h"
#include "tests/data/tokenizer_test_util.h"

namespace plm::data {
namespace {

using nlohmann::json;
using ::plm::testing::fresh_temp_dir;
using ::plm::testing::tokenizer_data_dir;
using ::plm::testing::write_test_file;

json tiny_tokenizer_json() {
  json vocab = json::object();
  for (int byte = 0; byte < 256; ++byte) vocab[bytes_to_byte_level(std::string(1, static_cast<char>(byte)))] = byte;
  vocab["he"] = 256;
  vocab["ll"] = 257;
  vocab["hell"] = 258;
  return {{"added_tokens",
           {{{"id", 259}, {"content", "<|begin_of_text|>"}, {"special", true}},
            {{"id", 260}, {"content", "<|eot_id|>"}, {"special", true}}}},
          {"normalizer", nullptr},
          {"pre_tokenizer",
           {{"type", "Sequence"},
            {"pretokenizers",
             {{{"type", "Split"}, {"pattern", {{"Regex", std::string(kLlama3PretokenizerPattern)}}},
               {"behavior", "Isolated"}, {"invert", false}},
              {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}}},
          {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", {"h e", "l l", "he ll"}}}}};
}

// Loads `tokenizer` written as dir/tokenizer.json and returns the status message ("" when it loads).
std::string load_error(const json& tokenizer) {
  const std::filesystem::path dir = fresh_temp_dir("tiny_bad");
  write_test_file(dir / "tokenizer.json", tokenizer.dump());
  const absl::StatusOr<Tokenizer> loaded = load_tokenizer(dir / "tokenizer.json");
  return loaded.ok() ? "" : std::string(loaded.status().message());
}

std::string model_error(std::string_view model_text) {
  const std::filesystem::path path = fresh_temp_dir("bad_model") / "bad.model";
  write_test_file(path, model_text);
  const absl::StatusOr<Tokenizer> loaded = load_tokenizer(path);
  return loaded.ok() ? "" : std::string(loaded.status().message());
}

// The 256 single bytes in base64, one per line with rank = byte: the smallest valid tokenizer.model.
std::string byte_ranks_model(int num_bytes) {
  std::string text;
  for (int byte = 0; byte < num_bytes; ++byte) {
    text += absl::StrCat(absl::Base64Escape(std::string(1, static_cast<char>(byte))), " ", byte, "\n");
  }
  return text;
}

TEST(ByteLevelTest, AllBytesRoundTrip) {
  std::string all;
  for (int byte = 0; byte < 256; ++byte) all += static_cast<char>(byte);
  EXPECT_EQ(byte_level_to_bytes(bytes_to_byte_level(all)), all);
  EXPECT_EQ(bytes_to_byte_level(" \n!\xAD"), "\xC4\xA0\xC4\x8A!\xC5\x83");  // Ġ Ċ ! U+0143
  EXPECT_EQ(bytes_to_byte_level(std::string(1, '\0')), "\xC4\x80");        // U+0100
  EXPECT_EQ(byte_level_to_bytes("\xC4\xA0hello"), " hello");
  EXPECT_EQ(byte_level_to_bytes("\xE2\x82\xAC"), std::nullopt);  // € is not in the alphabet
  EXPECT_EQ(byte_level_to_bytes("\xC1\xA1"), std::nullopt);      // overlong '!'
}

TEST(TokenizerLoaderTest, TinyHfTokenizerWithConfig) {
  const std::filesystem::path dir = fresh_temp_dir("tiny");
  write_test_file(dir / "tokenizer.json", tiny_tokenizer_json().dump());
  write_test_file(dir / "tokenizer_config.json",
                  R"({"bos_token": {"content": "<|begin_of_text|>"}, "eos_token": "<|eot_id|>", "pad_token": null})");
  const absl::StatusOr<Tokenizer> tokenizer = load_tokenizer(dir);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  EXPECT_EQ(tokenizer->vocab_size(), 261);
  EXPECT_EQ(tokenizer->bos_id(), 259);
  EXPECT_EQ(tokenizer->eos_id(), 260);
  EXPECT_EQ(tokenizer->pad_id(), std::nullopt);
  // "hello": h e l l o -> he l l o -> he ll o -> hell o.
  EXPECT_EQ(tokenizer->encode("hello<|eot_id|>", {.add_bos = true}), (std::vector<int32_t>{259, 258, 'o', 260}));
  EXPECT_EQ(tokenizer->decode(std::vector<int32_t>{258, 'o'}).value(), "hello");
}

TEST(TokenizerLoaderTest, DirectoryPrefersTokenizerJson) {
  const std::filesystem::path dir = fresh_temp_dir("both");
  std::filesystem::create_symlink(tokenizer_data_dir() / "llama3_tokenizer.model", dir / "tokenizer.model");
  absl::StatusOr<Tokenizer> tokenizer = load_tokenizer(dir);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  EXPECT_EQ(tokenizer->vocab_size(), 128256);
  write_test_file(dir / "tokenizer.json", tiny_tokenizer_json().dump());
  tokenizer = load_tokenizer(dir);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  EXPECT_EQ(tokenizer->vocab_size(), 261);
}

TEST(TokenizerLoaderTest, MissingFiles) {
  const std::filesystem::path dir = fresh_temp_dir("empty");
  absl::Status status = load_tokenizer(dir).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(status.message().find("no tokenizer.json or tokenizer.model"), absl::string_view::npos) << status;
  status = load_tokenizer(dir / "nope.model").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(status.message().find("nope.model"), absl::string_view::npos) << status;
}

TEST(TokenizerLoaderTest, TiktokenErrorsNameTheLine) {
  EXPECT_EQ(model_error(byte_ranks_model(256)), "");
  EXPECT_NE(model_error("IQ== 0\nIg== 1\n!!notbase64 2\n").find("bad.model:3: bad base64 token '!!notbase64'"), std::string::npos);
  EXPECT_NE(model_error("IQ== 0\nIg== x\n").find("bad.model:2: bad rank 'x'"), std::string::npos);
  EXPECT_NE(model_error("IQ==\n").find("bad.model:1: expected 'base64-token rank'"), std::string::npos);
  EXPECT_NE(model_error(byte_ranks_model(256) + "IQ== 300\n").find("appears twice"), std::string::npos);
  EXPECT_NE(model_error(byte_ranks_model(256) + "aGk= 5\n").find("token id 5 is used twice"), std::string::npos);
  EXPECT_NE(model_error(byte_ranks_model(255)).find("no token for the single byte 0xff"), std::string::npos);
  EXPECT_NE(model_error("").find("no tokens"), std::string::npos);
}

TEST(TokenizerLoaderTest, HfErrorsNameTheProblem) {
  const auto expect_error = [](const json& tokenizer, std::string_view expected) {
    const std::string message = load_error(tokenizer);
    EXPECT_NE(message.find("tokenizer.json: "), std::string::npos) << message;
    EXPECT_NE(message.find(expected), std::string::npos) << message;
  };
  json tokenizer = tiny_tokenizer_json();
  EXPECT_EQ(load_error(tokenizer), "");

  tokenizer["model"]["merges"] = {"h e", "l zz", "he ll"};
  expect_error(tokenizer, "model.merges[1]: 'zz' is not in model.vocab");
  tokenizer["model"]["merges"] = {"h e", "l x", "he ll"};
  expect_error(tokenizer, "model.merges[1]: 'lx' is not in model.vocab");
  tokenizer["model"]["merges"] = {"h e", "he ll"};
  expect_error(tokenizer, "2 merges, but the vocabulary has 3 two-token splits");
  tokenizer["model"]["merges"] = {"l l", "h e", "he ll"};
  expect_error(tokenizer, "model.merges[1]: not ordered by the rank");
  tokenizer["model"]["merges"] = json::array({json::array({"h", "e"}), json::array({"l", "l"}), json::array({"he", "ll"})});
  EXPECT_EQ(load_error(tokenizer), "");
  tokenizer["model"]["merges"] = {"h e", "h e", "l l", "he ll"};
  expect_error(tokenizer, "model.merges[1]: 'h e' appears twice");

  tokenizer = tiny_tokenizer_json();
  tokenizer["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "\\s+";
  expect_error(tokenizer, "pre_tokenizer: unsupported Split");
  tokenizer = tiny_tokenizer_json();
  tokenizer["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};
  expect_error(tokenizer, "ByteLevel must have use_regex=false");
  tokenizer = tiny_tokenizer_json();
  tokenizer["normalizer"] = {{"type", "NFC"}};
  expect_error(tokenizer, "normalizer: must be null");
  tokenizer = tiny_tokenizer_json();
  tokenizer["model"]["vocab"]["\xE2\x82\xAC"] = 261;
  expect_error(tokenizer, "model.vocab: '\xE2\x82\xAC' is not in GPT-2's byte-level alphabet");
  tokenizer = tiny_tokenizer_json();
  tokenizer["added_tokens"][0]["lstrip"] = true;
  expect_error(tokenizer, "uses lstrip/rstrip/single_word");
  tokenizer = tiny_tokenizer_json();
  tokenizer.erase("model");
  expect_error(tokenizer, "key 'model' not found");

  const std::filesystem::path dir = fresh_temp_dir("malformed");
  write_test_file(dir / "tokenizer.json", "{\"model\": [1, 2,");
  const absl::Status status = load_tokenizer(dir).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("tokenizer.json: [json.exception.parse_error"), absl::string_view::npos) << status;
}

TEST(TokenizerLoaderTest, ConfigErrorsNameTheConfig) {
  const std::filesystem::path dir = fresh_temp_dir("bad_config");
  write_test_file(dir / "tokenizer.json", tiny_tokenizer_json().dump());
  write_test_file(dir / "tokenizer_config.json", R"({"bos_token": 5})");
  const absl::Status status = load_tokenizer(dir).status();
  EXPECT_NE(status.message().find("tokenizer_config.json: bos_token: expected a string"), absl::string_view::npos) << status;
}

}  // namespace
}  // namespace plm::data
