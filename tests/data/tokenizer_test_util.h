// Helpers for the tokenizer tests: the shared test vectors ($PLM_SHARED_DIR/data/tokenizer, llama.cpp's
// format), the Llama 3 tokenizer loaded once, and scratch files.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "data/tokenizer.h"

namespace plm::testing {

std::filesystem::path tokenizer_data_dir();

struct TokenizerCase {
  std::string text;
  std::vector<int32_t> ids;
};

// <stem>.inp holds texts separated by "\n__ggml_vocab_test__\n"; <stem>.out one line of ids per text.
std::vector<TokenizerCase> read_tokenizer_cases(std::string_view stem);

// llama3_tokenizer.model with the PLM special tokens, loaded on first use.
const data::Tokenizer& llama3_tokenizer();

// Writes dir/tokenizer.json as transformers' TikTokenConverter would (spec/tokenizer.md §2), from the shared
// llama3.2_encoder.json and llama3.2_vocab.bpe; merges as "a b" strings or as ["a", "b"] pairs.
std::filesystem::path write_llama3_tokenizer_json(const std::filesystem::path& dir, bool merges_as_pairs);

std::string read_test_file(const std::filesystem::path& path);
void write_test_file(const std::filesystem::path& path, std::string_view bytes);
// A fresh empty directory of its own (mkdtemp) under gtest's temp dir ($TEST_TMPDIR when set), removed when
// the test program exits.
std::filesystem::path make_scratch_dir(std::string_view name);

}  // namespace plm::testing
