#include "model/json_fields.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "core/json_depth.h"

namespace plm::model {

absl::StatusOr<std::string> read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open: ", std::strerror(errno)));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return absl::DataLossError(absl::StrCat(path, ": read failed"));
  return text.str();
}

absl::StatusOr<nlohmann::json> parse_json(const std::string& text, const std::string& source) {
  if (const std::string problem = json_depth_problem(text); !problem.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": ", problem));
  }
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {  // parse_error, and out_of_range for a number like 1e999
    return absl::InvalidArgumentError(absl::StrCat(source, ": malformed JSON: ", e.what()));
  }
}

JsonFields::JsonFields(const nlohmann::json& object, std::string source, std::string prefix)
    : object_(&object), source_(std::move(source)), prefix_(std::move(prefix)) {}

absl::StatusOr<JsonFields> JsonFields::of(const nlohmann::json& value, std::string source,
                                          std::string prefix) {
  if (!value.is_object()) {
    const std::string what = prefix.empty() ? "top level" : prefix.substr(0, prefix.size() - 1);
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": ", what, " must be a JSON object, got ", value.dump()));
  }
  return JsonFields(value, std::move(source), std::move(prefix));
}

namespace {

// An integer JSON number that int64_t holds: get<int64_t>() would wrap one above INT64_MAX to a negative number.
bool is_int64(const nlohmann::json& value) {
  return value.is_number_integer() &&
         !(value.is_number_unsigned() && value.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX));
}

}  // namespace

const nlohmann::json* JsonFields::find(const std::string& key) const {
  const auto it = object_->find(key);
  if (it == object_->end() || it->is_null()) return nullptr;
  return &*it;
}

std::vector<std::string> JsonFields::keys() const {
  std::vector<std::string> keys;
  for (const auto& item : object_->items()) keys.push_back(item.key());
  return keys;
}

absl::Status JsonFields::error(const std::string& key, const std::string& problem) const {
  return absl::InvalidArgumentError(absl::StrCat(source_, ": ", prefix_, key, " ", problem));
}

absl::StatusOr<std::optional<int64_t>> JsonFields::optional_int(const std::string& key) const {
  const nlohmann::json* value = find(key);
  if (value == nullptr) return std::optional<int64_t>();
  if (!is_int64(*value)) return error(key, "must be an integer in the 64-bit range, got " + value->dump());
  return std::optional<int64_t>(value->get<int64_t>());
}

absl::StatusOr<int64_t> JsonFields::required_int(const std::string& key) const {
  auto value = optional_int(key);
  if (!value.ok()) return value.status();
  if (!value->has_value()) return error(key, "is missing (required)");
  return **value;
}

absl::StatusOr<std::optional<double>> JsonFields::optional_double(const std::string& key) const {
  const nlohmann::json* value = find(key);
  if (value == nullptr) return std::optional<double>();
  if (!value->is_number()) return error(key, "must be a number, got " + value->dump());
  return std::optional<double>(value->get<double>());
}

absl::StatusOr<std::optional<bool>> JsonFields::optional_bool(const std::string& key) const {
  const nlohmann::json* value = find(key);
  if (value == nullptr) return std::optional<bool>();
  if (!value->is_boolean()) return error(key, "must be true or false, got " + value->dump());
  return std::optional<bool>(value->get<bool>());
}

absl::StatusOr<std::optional<std::string>> JsonFields::optional_string(const std::string& key) const {
  const nlohmann::json* value = find(key);
  if (value == nullptr) return std::optional<std::string>();
  if (!value->is_string()) return error(key, "must be a string, got " + value->dump());
  return std::optional<std::string>(value->get<std::string>());
}

absl::StatusOr<std::optional<std::vector<int64_t>>> JsonFields::optional_int_list(
    const std::string& key) const {
  const nlohmann::json* value = find(key);
  if (value == nullptr) return std::optional<std::vector<int64_t>>();
  if (is_int64(*value)) return std::optional(std::vector<int64_t>{value->get<int64_t>()});
  const auto not_ints = error(key, "must be an integer or a list of integers, got " + value->dump());
  if (!value->is_array()) return not_ints;
  std::vector<int64_t> list;
  for (const auto& item : *value) {
    if (!is_int64(item)) return not_ints;
    list.push_back(item.get<int64_t>());
  }
  return std::optional(std::move(list));
}

absl::StatusOr<std::optional<JsonFields>> JsonFields::optional_object(const std::string& key) const {
  const nlohmann::json* value = find(key);
  if (value == nullptr) return std::optional<JsonFields>();
  if (!value->is_object()) return error(key, "must be a JSON object, got " + value->dump());
  return std::optional(JsonFields(*value, source_, prefix_ + key + "."));
}

}  // namespace plm::model
