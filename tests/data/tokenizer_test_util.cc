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

std::filesystem::path tokenizer_data_dir() {
  // $PLM_SHARED_DIR wins; the built-in default covers ctest runs where the variable does not arrive.
  const char* shared = std::getenv("PLM_SHARED_DIR");
  return std::filesystem::path(shared != nullptr && *shared != '\0' ? shared : PLM_DEFAULT_SHARED_DIR) / "data" / "tokenizer";
}

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

std::filesystem::path make_scratch_dir(std::string_view name) {
  // Removed when the test program exits normally; a crashed run leaves them to look at.
  struct ScratchDirs {
    std::vector<std::filesystem::path> dirs;
    ~ScratchDirs() {
      std::error_code ignored;
      for (const auto& dir : dirs) std::filesystem::remove_all(dir, ignored);
    }
  };
  static ScratchDirs scratch_dirs;
  // mkdtemp: a directory of this run's own, so two test runs at once never share (or delete) each other's.
  std::string dir = (std::filesystem::path(::testing::TempDir()) / ("plm_" + std::string(name) + ".XXXXXX")).string();
  PLM_CHECK(::mkdtemp(dir.data()) != nullptr) << "cannot create " << dir << ": " << std::strerror(errno);
  scratch_dirs.dirs.push_back(dir);
  return dir;
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
  json merges = json::array();
  std::istringstream lines(read_test_file(tokenizer_data_dir() / "llama3.2_vocab.bpe"));
  for (std::string line; std::getline(lines, line);) {
    if (line.empty()) continue;
    const size_t space = line.find(' ');
    merges.push_back(merges_as_pairs ? json::array({line.substr(0, space), line.substr(space + 1)}) : json(line));
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
        {"vocab", json::parse(read_test_file(tokenizer_data_dir() / "llama3.2_encoder.json"))},
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
