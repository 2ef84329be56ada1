// Loading a tokenizer from tiktoken's tokenizer.model, and choosing the loader for a file or a model directory.
// The HF tokenizer.json loader is in hf_tokenizer_loader.cc.
#include "data/tokenizer_loader.h"

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/status_macros.h"
#include "data/read_file.h"

namespace plm::data {

std::vector<TokenEntry> plm_special_tokens(int32_t first_id) {
  // spec/tokenizer.md §1.2: PLM's names, not Llama 3.1's (128002 is <|image|>, 128003 <|video|>).
  std::vector<std::string> names = {"<|begin_of_text|>", "<|end_of_text|>", "<|image|>", "<|video|>",
                                    "<|reserved_special_token_2|>", "<|reserved_special_token_3|>",
                                    "<|start_header_id|>", "<|end_header_id|>", "<|reserved_special_token_4|>",
                                    "<|eot_id|>"};
  for (int i = 5; i <= 250; ++i) names.push_back(absl::StrCat("<|reserved_special_token_", i, "|>"));
  std::vector<TokenEntry> tokens;
  tokens.reserve(names.size());
  for (std::string& name : names) tokens.push_back({std::move(name), first_id + static_cast<int32_t>(tokens.size())});
  return tokens;
}

absl::StatusOr<Tokenizer> load_tiktoken_tokenizer(const std::filesystem::path& model_path) {
  PLM_ASSIGN_OR_RETURN(const std::string text, read_file(model_path));
  const std::string file = model_path.string();
  std::vector<TokenEntry> regular;
  regular.reserve(text.size() / 16);
  int32_t max_rank = -1;
  size_t line_begin = 0;
  for (int line_number = 1; line_begin < text.size(); ++line_number) {
    size_t line_end = text.find('\n', line_begin);
    if (line_end == std::string::npos) line_end = text.size();
    const absl::string_view line = absl::StripAsciiWhitespace(
        absl::string_view(text.data() + line_begin, line_end - line_begin));
    line_begin = line_end + 1;
    if (line.empty()) continue;
    const size_t space = line.find(' ');
    const auto where = [&] { return absl::StrCat(file, ":", line_number, ": "); };
    if (space == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat(where(), "expected 'base64-token rank', got '", line, "'"));
    }
    TokenEntry token;
    const absl::string_view base64 = line.substr(0, space);
    if (!absl::Base64Unescape(base64, &token.bytes) || token.bytes.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(where(), "bad base64 token '", base64, "'"));
    }
    const absl::string_view rank = absl::StripLeadingAsciiWhitespace(line.substr(space + 1));
    if (!absl::SimpleAtoi(rank, &token.id) || token.id < 0) {
      return absl::InvalidArgumentError(absl::StrCat(where(), "bad rank '", rank, "'"));
    }
    max_rank = std::max(max_rank, token.id);
    regular.push_back(std::move(token));
  }
  if (regular.empty()) return absl::InvalidArgumentError(absl::StrCat(file, ": no tokens"));
  auto vocab = Vocab::create(std::move(regular), plm_special_tokens(max_rank + 1));
  if (!vocab.ok()) return absl::InvalidArgumentError(absl::StrCat(file, ": ", vocab.status().message()));
  return Tokenizer(*std::move(vocab));
}

absl::StatusOr<Tokenizer> load_tokenizer(const std::filesystem::path& path) {
  std::error_code error;
  if (std::filesystem::is_directory(path, error)) {
    for (const char* name : {"tokenizer.json", "tokenizer.model"}) {
      if (std::filesystem::exists(path / name, error)) return load_tokenizer(path / name);
    }
    return absl::NotFoundError(absl::StrCat(path.string(), ": directory has no tokenizer.json or tokenizer.model"));
  }
  return path.extension() == ".json" ? load_hf_tokenizer(path) : load_tiktoken_tokenizer(path);
}

}  // namespace plm::data
