#include "tests/data/tokenizer_test_util.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/check.h"
#include "data/pretokenizer.h"
#include "data/tokenizer_loader.h"

namespace plm::testing {

std::filesystem::path tokenizer_data_dir() { return std::filesystem::path(PLM_SOURCE_DIR) / "tests/fixtures/tokenizer"; }

std::string read_test_file(const std::filesystem::path& path) {
  std::ifstream file(path, std::ios::binary);  // binary: the vectors hold \r, NUL, VT, FF
  PLM_CHECK(file) << "cannot open " << path;
  std::ostringstream bytes;
  bytes << file.rdbuf();
  return bytes.str();
}

void write_test_file(const std::filesystem::path& path, std::string_view bytes) {
  std::ofstream file(path, std::ios::binary);
  file.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  PLM_CHECK(file) << "cannot write " << path;
}

std::vector<TokenizerCase> read_tokenizer_cases(std::string_view stem) {
  const std::string inputs = read_test_file(tokenizer_data_dir() / (std::string(stem) + ".inp"));
  const std::string outputs = read_test_file(tokenizer_data_dir() / (std::string(stem) + ".out"));
  constexpr std::string_view kSeparator = "\n__ggml_vocab_test__\n";
  std::vector<TokenizerCase> cases;
  for (size_t begin = 0; begin < inputs.size();) {
    const size_t end = inputs.find(kSeparator, begin);
    PLM_CHECK(end != std::string::npos) << stem << ".inp does not end with a separator";
    cases.push_back({inputs.substr(begin, end - begin), {}});
    begin = end + kSeparator.size();
  }
  std::istringstream lines(outputs);
  std::string line;
  size_t index = 0;
  for (; std::getline(lines, line); ++index) {
    PLM_CHECK(index < cases.size()) << stem << ".out has more lines than " << stem << ".inp has texts";
    std::istringstream ids(line);
    for (int32_t id; ids >> id;) cases[index].ids.push_back(id);
  }
  PLM_CHECK(index == cases.size()) << stem << ".out has " << index << " lines for " << cases.size() << " texts";
  return cases;
}

std::filesystem::path write_llama3_tokenizer_json(const std::filesystem::path& dir, bool merges_as_pairs) {
  using nlohmann::json;
  // The committed HF tokenizer.json's model.vocab and model.merges are llama3.2's encoder.json and vocab.bpe.
  const json hf = json::parse(
      read_test_file(std::filesystem::path(PLM_SOURCE_DIR) / "tests/fixtures/models/tokenizer/tokenizer.json"));
  json merges = json::array();
  for (const json& merge : hf["model"]["merges"]) {
    const std::string left = merge[0], right = merge[1];
    merges.push_back(merges_as_pairs ? json::array({left, right}) : json(left + " " + right));
  }
  json added_tokens = json::array();
  for (const data::TokenEntry& token : data::plm_special_tokens(128000)) {
    added_tokens.push_back({{"id", token.id}, {"content", token.bytes}, {"single_word", false}, {"lstrip", false},
                            {"rstrip", false}, {"normalized", false}, {"special", true}});
  }
  const json tokenizer = {
      {"version", "1.0"},
      {"added_tokens", added_tokens},
      {"normalizer", nullptr},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"}, {"pattern", {{"Regex", std::string(data::kLlama3PretokenizerPattern)}}},
           {"behavior", "Isolated"}, {"invert", false}},
          {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}}}}}},
      {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}}},
      {"model",
       {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr}, {"fuse_unk", false}, {"byte_fallback", false}, {"ignore_merges", true},
        {"vocab", hf["model"]["vocab"]},
        {"merges", merges}}}};
  const std::filesystem::path path = dir / "tokenizer.json";
  write_test_file(path, tokenizer.dump());
  return path;
}

const data::Tokenizer& llama3_tokenizer() {
  static const data::Tokenizer* tokenizer = [] {
    absl::StatusOr<data::Tokenizer> loaded = data::load_tiktoken_tokenizer(tokenizer_data_dir() / "llama3_tokenizer.model");
    PLM_CHECK(loaded.ok()) << loaded.status().ToString();
    return new data::Tokenizer(*std::move(loaded));
  }();
  return *tokenizer;
}

}  // namespace plm::testing
