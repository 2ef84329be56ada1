// `plm tokenize`: raw bytes on stdin -> token ids on one line of stdout, or with --decode, ids on stdin ->
// the bytes they stand for. For checking the tokenizer against other implementations from the shell.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "apps/command.h"
#include "data/tokenizer_loader.h"

namespace plm::apps {
namespace {

struct TokenizeOptions {
  std::string tokenizer_path;  // tokenizer.model, tokenizer.json or a model directory
  bool no_special = false;
  bool decode = false;
};

std::string read_stdin() {
  std::string bytes;
  char buffer[1 << 16];
  size_t count;
  while ((count = std::fread(buffer, 1, sizeof(buffer), stdin)) > 0) bytes.append(buffer, count);
  return bytes;
}

int fail(absl::string_view message) {
  std::fprintf(stderr, "plm tokenize: %.*s\n", static_cast<int>(message.size()), message.data());
  return 1;
}

int decode_stdin(const data::Tokenizer& tokenizer) {
  std::vector<int32_t> ids;
  for (const absl::string_view word : absl::StrSplit(read_stdin(), absl::ByAnyChar(" \t\r\n"), absl::SkipEmpty())) {
    int32_t id;
    if (!absl::SimpleAtoi(word, &id)) return fail(absl::StrCat("'", word, "' (word ", ids.size() + 1, " of stdin) is not a token id"));
    ids.push_back(id);
  }
  const absl::StatusOr<std::string> bytes = tokenizer.decode(ids);
  if (!bytes.ok()) return fail(bytes.status().message());
  std::fwrite(bytes->data(), 1, bytes->size(), stdout);
  return 0;
}

int run_tokenize(const TokenizeOptions& options) {
  const absl::StatusOr<data::Tokenizer> tokenizer = data::load_tokenizer(options.tokenizer_path);
  if (!tokenizer.ok()) return fail(tokenizer.status().message());
  if (options.decode) return decode_stdin(*tokenizer);
  const std::vector<int32_t> ids = tokenizer->encode(read_stdin(), {.allow_special = !options.no_special});
  std::printf("%s\n", absl::StrJoin(ids, " ").c_str());
  return 0;
}

}  // namespace

void add_tokenize_command(CLI::App& app, CommandMain* selected) {
  auto options = std::make_shared<TokenizeOptions>();
  CLI::App* tokenize = app.add_subcommand("tokenize", "Encode stdin to token ids (or decode ids with --decode)");
  tokenize->add_option("--tokenizer", options->tokenizer_path, "tokenizer.model, tokenizer.json or a model directory")
      ->required();
  tokenize->add_flag("--no-special", options->no_special, "Encode special-token text such as <|eot_id|> as plain text");
  tokenize->add_flag("--decode", options->decode, "Read whitespace-separated ids and write their bytes");
  tokenize->callback([selected, options] { *selected = [options] { return run_tokenize(*options); }; });
}

}  // namespace plm::apps
