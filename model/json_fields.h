// Reading JSON files with errors that name the file and the key: read_text_file, parse_json, and
// JsonFields, a typed view of one JSON object. A key holding `null` counts as absent (HF writes `null`
// for unset options such as `rope_scaling` or `init_values`).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"

namespace plm::model {

absl::StatusOr<std::string> read_text_file(const std::string& path);
// `source` names the text in the error ("config.json: malformed JSON: ...").
absl::StatusOr<nlohmann::json> parse_json(const std::string& text, const std::string& source);

class JsonFields {
 public:
  // `object` must outlive this view. `prefix` is the key path shown in errors, e.g. "text_config.".
  JsonFields(const nlohmann::json& object, std::string source, std::string prefix);
  static absl::StatusOr<JsonFields> of(const nlohmann::json& value, std::string source, std::string prefix);

  const nlohmann::json* find(const std::string& key) const;  // nullptr when absent or null
  bool has(const std::string& key) const { return find(key) != nullptr; }
  std::vector<std::string> keys() const;  // every key, null-valued ones included

  absl::StatusOr<std::optional<int64_t>> optional_int(const std::string& key) const;
  absl::StatusOr<int64_t> required_int(const std::string& key) const;
  absl::StatusOr<std::optional<double>> optional_double(const std::string& key) const;
  absl::StatusOr<std::optional<bool>> optional_bool(const std::string& key) const;
  absl::StatusOr<std::optional<std::string>> optional_string(const std::string& key) const;
  // An integer or a list of integers (HF's eos_token_id), as a list.
  absl::StatusOr<std::optional<std::vector<int64_t>>> optional_int_list(const std::string& key) const;
  // An object-valued key as a nested view; nullopt when absent.
  absl::StatusOr<std::optional<JsonFields>> optional_object(const std::string& key) const;

  // "<source>: <prefix><key> <problem>": the one shape of every error about a field.
  absl::Status error(const std::string& key, const std::string& problem) const;
  const std::string& source() const { return source_; }
  const std::string& prefix() const { return prefix_; }

 private:
  const nlohmann::json* object_;
  std::string source_;
  std::string prefix_;
};

}  // namespace plm::model
