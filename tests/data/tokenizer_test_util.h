// Helpers for the tokenizer tests: the committed test vectors (tests/fixtures/tokenizer, llama.cpp's format),
// the Llama 3 tokenizer loaded once, and scratch files.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "data/tokenizer.h"
#include "tests/core/test_temp_dir.h"  // fresh_temp_dir

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

// Writes dir/tokenizer.json as transformers' TikTokenConverter would (spec/tokenizer.md §2), with the vocabulary
// and merges of tests/fixtures/models/tokenizer/tokenizer.json; merges as "a b" strings or as ["a", "b"] pairs.
std::filesystem::path write_llama3_tokenizer_json(const std::filesystem::path& dir, bool merges_as_pairs);

std::string read_test_file(const std::filesystem::path& path);
void write_test_file(const std::filesystem::path& path, std::string_view bytes);

}  // namespace plm::testing
