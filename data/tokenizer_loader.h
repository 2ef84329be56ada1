// Building a Tokenizer from files: tiktoken's `tokenizer.model` (base64 token, space, rank per line; the PLM
// special tokens are added after the last rank), an HF `tokenizer.json` (with its optional sibling
// tokenizer_config.json for bos/eos/pad), or a model directory holding either. Errors name the file, the
// line or entry where it can be told, and the problem.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "data/tokenizer.h"

namespace plm::data {

// A directory: its tokenizer.json if present, else its tokenizer.model. A file: HF if its name ends in
// ".json", tiktoken otherwise.
absl::StatusOr<Tokenizer> load_tokenizer(const std::filesystem::path& path);

absl::StatusOr<Tokenizer> load_tiktoken_tokenizer(const std::filesystem::path& model_path);

// Accepts only what reproduces HF exactly with this implementation: no normalizer, the Llama 3 Split regex
// followed by ByteLevel without its own regex, a BPE model whose merges are the full rank-ordered merge list
// of the vocabulary (what transformers' TikTokenConverter writes; spec/tokenizer.md §3.5), and added tokens
// without lstrip/rstrip/single_word. Merges may be "a b" strings or ["a", "b"] pairs.
absl::StatusOr<Tokenizer> load_hf_tokenizer(const std::filesystem::path& tokenizer_json_path);

// The 256 PLM special tokens of spec/tokenizer.md §1.2 with ids first_id, first_id + 1, ...
std::vector<TokenEntry> plm_special_tokens(int32_t first_id);

}  // namespace plm::data
