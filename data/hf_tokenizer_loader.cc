// Loading a tokenizer from an HF tokenizer.json (+ optional tokenizer_config.json). Only the configuration
// that transformers' TikTokenConverter writes for Llama 3 is accepted, because it is the one this
// implementation reproduces exactly (spec/tokenizer.md §2); anything else is an error, not a silent mismatch.
#include <utility>

#include <nlohmann/json.hpp>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "core/json_depth.h"
#include "core/status_macros.h"
#include "data/byte_level.h"
#include "data/read_file.h"
#include "data/tokenizer_loader.h"

namespace plm::data {
namespace {

using nlohmann::json;

absl::Status invalid(std::string_view what) { return absl::InvalidArgumentError(std::string(what)); }

// Sequence[Split(Llama 3 regex, Isolated), ByteLevel(use_regex=false, add_prefix_space=false)].
absl::Status check_pre_tokenizer(const json& pre_tokenizer) {
  const std::vector<json> steps = pre_tokenizer.value("type", "") == "Sequence"
                                      ? pre_tokenizer.at("pretokenizers").get<std::vector<json>>()
                                      : std::vector<json>{pre_tokenizer};
  bool has_split = false;
  for (const json& step : steps) {
    const std::string type = step.value("type", "");
    if (type == "Split") {
      const std::string regex = step.at("pattern").value("Regex", "");
      if (regex != kLlama3PretokenizerPattern || step.value("behavior", "") != "Isolated" || step.value("invert", false)) {
        return invalid(absl::StrCat("pre_tokenizer: unsupported Split (expected the Llama 3 regex, Isolated, not inverted; got '",
                                    regex, "')"));
      }
      has_split = true;
    } else if (type == "ByteLevel") {
      if (step.value("use_regex", true) || step.value("add_prefix_space", true)) {
        return invalid("pre_tokenizer: ByteLevel must have use_regex=false and add_prefix_space=false");
      }
    } else {
      return invalid(absl::StrCat("pre_tokenizer: unsupported step type '", type, "'"));
    }
  }
  if (!has_split) return invalid("pre_tokenizer: no Split step with the Llama 3 regex");
  return absl::OkStatus();
}

absl::StatusOr<std::vector<TokenEntry>> read_model_vocab(const json& vocab) {
  std::vector<TokenEntry> tokens;
  tokens.reserve(vocab.size());
  for (const auto& [spelling, id] : vocab.items()) {
    std::optional<std::string> bytes = byte_level_to_bytes(spelling);
    if (!bytes) return invalid(absl::StrCat("model.vocab: '", spelling, "' is not in GPT-2's byte-level alphabet"));
    tokens.push_back({*std::move(bytes), id.get<int32_t>()});
  }
  return tokens;
}

absl::StatusOr<std::vector<TokenEntry>> read_added_tokens(const json& added_tokens) {
  std::vector<TokenEntry> tokens;
  for (const json& token : added_tokens) {
    const std::string content = token.at("content").get<std::string>();
    if (token.value("lstrip", false) || token.value("rstrip", false) || token.value("single_word", false)) {
      return invalid(absl::StrCat("added_tokens: '", content, "' uses lstrip/rstrip/single_word, which is not supported"));
    }
    tokens.push_back({content, token.at("id").get<int32_t>()});
  }
  return tokens;
}

// The merge loop ranks pairs by the vocabulary rank of their concatenation. That equals HF's merge-list
// priority when the merges are exactly all two-token splits of vocabulary tokens, ordered by the rank of
// the result (spec/tokenizer.md §3.5), so check that.
absl::Status check_merges(const json& merges, const Vocab& vocab) {
  absl::flat_hash_set<uint64_t> pairs;
  pairs.reserve(merges.size());
  int32_t previous_result = -1;
  for (size_t i = 0; i < merges.size(); ++i) {
    const json& merge = merges[i];
    std::string parts[2];
    if (merge.is_string()) {
      const std::string line = merge.get<std::string>();
      const size_t space = line.find(' ');
      if (space == std::string::npos || line.find(' ', space + 1) != std::string::npos) {
        return invalid(absl::StrCat("model.merges[", i, "]: expected \"left right\", got \"", line, "\""));
      }
      parts[0] = line.substr(0, space);
      parts[1] = line.substr(space + 1);
    } else if (merge.is_array() && merge.size() == 2) {
      parts[0] = merge[0].get<std::string>();
      parts[1] = merge[1].get<std::string>();
    } else {
      return invalid(absl::StrCat("model.merges[", i, "]: expected a string or a pair of strings, got ", merge.dump()));
    }
    int32_t ranks[2];
    std::string joined;
    for (int side = 0; side < 2; ++side) {
      const std::optional<std::string> bytes = byte_level_to_bytes(parts[side]);
      ranks[side] = bytes ? vocab.rank(*bytes) : Vocab::kNoToken;
      if (ranks[side] == Vocab::kNoToken) {
        return invalid(absl::StrCat("model.merges[", i, "]: '", parts[side], "' is not in model.vocab"));
      }
      joined += *bytes;
    }
    const int32_t result = vocab.rank(joined);
    if (result == Vocab::kNoToken) {
      return invalid(absl::StrCat("model.merges[", i, "]: '", parts[0], parts[1], "' is not in model.vocab"));
    }
    if (result < previous_result) {
      return invalid(absl::StrCat("model.merges[", i, "]: not ordered by the rank of the merged token (", result,
                                  " after ", previous_result, "); only rank-ordered merges are supported"));
    }
    previous_result = result;
    if (!pairs.insert(static_cast<uint64_t>(ranks[0]) << 32 | static_cast<uint32_t>(ranks[1])).second) {
      return invalid(absl::StrCat("model.merges[", i, "]: '", parts[0], " ", parts[1], "' appears twice"));
    }
  }
  size_t num_splits = 0;
  for (int32_t id = 0; id < vocab.size(); ++id) {
    if (!vocab.contains(id) || vocab.is_special(id)) continue;
    const std::string_view token = vocab.token_bytes(id);
    for (size_t cut = 1; cut < token.size(); ++cut) {
      num_splits += vocab.rank(token.substr(0, cut)) != Vocab::kNoToken && vocab.rank(token.substr(cut)) != Vocab::kNoToken;
    }
  }
  if (num_splits != merges.size()) {
    return invalid(absl::StrCat("model.merges: ", merges.size(), " merges, but the vocabulary has ", num_splits,
                                " two-token splits; only the complete merge list is supported"));
  }
  return absl::OkStatus();
}

// bos_token / eos_token / pad_token are a string, an {"content": ...} object, or null (no such role).
absl::StatusOr<SpecialTokenRoles> read_roles(const json& config) {
  SpecialTokenRoles roles;
  for (auto [key, name] : {std::pair{"bos_token", &roles.bos}, {"eos_token", &roles.eos}, {"pad_token", &roles.pad}}) {
    if (!config.contains(key)) continue;
    const json& value = config.at(key);
    if (value.is_null()) {
      name->clear();
    } else if (value.is_string()) {
      *name = value.get<std::string>();
    } else if (value.is_object()) {
      *name = value.at("content").get<std::string>();
    } else {
      return invalid(absl::StrCat(key, ": expected a string, an object with \"content\", or null"));
    }
  }
  return roles;
}

absl::StatusOr<Tokenizer> read_tokenizer(const json& tokenizer, const SpecialTokenRoles& roles) {
  if (tokenizer.contains("normalizer") && !tokenizer.at("normalizer").is_null()) {
    return invalid("normalizer: must be null (Llama 3 applies no normalization)");
  }
  PLM_RETURN_IF_ERROR(check_pre_tokenizer(tokenizer.at("pre_tokenizer")));
  const json& model = tokenizer.at("model");
  if (model.value("type", "BPE") != "BPE") return invalid(absl::StrCat("model.type: expected BPE, got ", model.value("type", "")));
  PLM_ASSIGN_OR_RETURN(std::vector<TokenEntry> regular, read_model_vocab(model.at("vocab")));
  PLM_ASSIGN_OR_RETURN(std::vector<TokenEntry> special, read_added_tokens(tokenizer.value("added_tokens", json::array())));
  PLM_ASSIGN_OR_RETURN(Vocab vocab, Vocab::create(std::move(regular), std::move(special)));
  PLM_RETURN_IF_ERROR(check_merges(model.at("merges"), vocab));
  return Tokenizer(std::move(vocab), roles);
}

// Reads and parses a JSON file and applies `read` to it; JSON errors (syntax, a missing key, a wrong type)
// become errors too, and every error is prefixed with the file's path.
template <typename T, typename Read>
absl::StatusOr<T> read_json_file(const std::filesystem::path& path, Read read) {
  PLM_ASSIGN_OR_RETURN(const std::string text, read_file(path));
  absl::StatusOr<T> result = [&]() -> absl::StatusOr<T> {
    if (const std::string problem = json_depth_problem(text); !problem.empty()) return invalid(problem);
    try {
      return read(json::parse(text));
    } catch (const json::exception& e) {
      return invalid(e.what());
    }
  }();
  if (result.ok()) return result;
  return absl::Status(result.status().code(), absl::StrCat(path.string(), ": ", result.status().message()));
}

}  // namespace

absl::StatusOr<Tokenizer> load_hf_tokenizer(const std::filesystem::path& tokenizer_json_path) {
  const std::filesystem::path config_path = tokenizer_json_path.parent_path() / "tokenizer_config.json";
  SpecialTokenRoles roles;
  std::error_code error;
  if (std::filesystem::exists(config_path, error)) {
    PLM_ASSIGN_OR_RETURN(roles, read_json_file<SpecialTokenRoles>(config_path, read_roles));
  }
  return read_json_file<Tokenizer>(tokenizer_json_path, [&](const json& tokenizer) { return read_tokenizer(tokenizer, roles); });
}

}  // namespace plm::data
