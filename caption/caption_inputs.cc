#include "caption/caption_inputs.h"

#include <algorithm>
#include <fstream>

#include <nlohmann/json.hpp>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "core/check.h"
#include "core/status_macros.h"

namespace plm::caption {

namespace {

constexpr const char* kImageExtensions[] = {".jpg", ".jpeg", ".png"};
constexpr const char* kVideoExtensions[] = {".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v", ".mpg", ".mpeg",
                                            ".ts",  ".flv", ".wmv",  ".3gp", ".ogv", ".gif"};

std::string lower_extension(const std::filesystem::path& path) {
  return absl::AsciiStrToLower(path.extension().string());
}

template <size_t N>
bool contains(const char* const (&list)[N], const std::string& value) {
  return std::find(std::begin(list), std::end(list), value) != std::end(list);
}

// A list's relative path is relative to the list's folder.
std::string resolve(const std::filesystem::path& folder, const std::string& path) {
  const std::filesystem::path p(path);
  return p.is_absolute() ? path : (folder / p).lexically_normal().string();
}

CaptionItem make_item(std::string id, std::string path, std::optional<std::string> prompt) {
  const MediaType type = media_type_of(path);
  return {.index = 0, .id = std::move(id), .path = std::move(path), .prompt = std::move(prompt), .type = type};
}

absl::StatusOr<std::vector<CaptionItem>> read_directory(const std::filesystem::path& dir) {
  std::vector<CaptionItem> items;
  std::error_code error;
  const auto options = std::filesystem::directory_options::follow_directory_symlink;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, options, error);
       !error && it != std::filesystem::recursive_directory_iterator(); it.increment(error)) {
    if (!it->is_regular_file(error) || !is_media_file(it->path())) continue;
    items.push_back(make_item(it->path().lexically_relative(dir).string(), it->path().string(), std::nullopt));
  }
  if (error) return absl::NotFoundError(absl::StrCat(dir.string(), ": cannot list the directory: ", error.message()));
  std::sort(items.begin(), items.end(), [](const CaptionItem& a, const CaptionItem& b) { return a.id < b.id; });
  return items;
}

absl::StatusOr<CaptionItem> parse_jsonl_item(const std::string& line, const std::filesystem::path& folder,
                                             const std::string& where) {
  const nlohmann::json doc = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object()) return absl::InvalidArgumentError(absl::StrCat(where, ": not a JSON object"));
  const auto string_field = [&](const char* key) -> absl::StatusOr<std::optional<std::string>> {
    const auto it = doc.find(key);
    if (it == doc.end() || it->is_null()) return std::nullopt;
    if (!it->is_string()) return absl::InvalidArgumentError(absl::StrCat(where, ": \"", key, "\" must be a string"));
    return it->get<std::string>();
  };
  PLM_ASSIGN_OR_RETURN(const std::optional<std::string> path, string_field("path"));
  PLM_ASSIGN_OR_RETURN(std::optional<std::string> id, string_field("id"));
  PLM_ASSIGN_OR_RETURN(std::optional<std::string> prompt, string_field("prompt"));
  if (!path || path->empty()) return absl::InvalidArgumentError(absl::StrCat(where, ": needs a \"path\""));
  if (id && id->empty()) return absl::InvalidArgumentError(absl::StrCat(where, ": an empty \"id\""));
  return make_item(id ? *std::move(id) : *path, resolve(folder, *path), std::move(prompt));
}

absl::StatusOr<std::vector<CaptionItem>> read_list(const std::filesystem::path& list) {
  std::ifstream in(list, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(list.string(), ": cannot open the input list"));
  const bool jsonl = lower_extension(list) == ".jsonl";
  const std::filesystem::path folder = list.parent_path();
  std::vector<CaptionItem> items;
  absl::flat_hash_map<std::string, int64_t> line_of_id;
  std::string line;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const std::string trimmed(absl::StripAsciiWhitespace(line));
    if (trimmed.empty() || (!jsonl && trimmed[0] == '#')) continue;
    const std::string where = absl::StrCat(list.string(), ":", number);
    CaptionItem item;
    if (jsonl) {
      PLM_ASSIGN_OR_RETURN(item, parse_jsonl_item(trimmed, folder, where));
    } else {
      item = make_item(trimmed, resolve(folder, trimmed), std::nullopt);
    }
    if (const auto [it, inserted] = line_of_id.try_emplace(item.id, number); !inserted) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": the id \"", item.id, "\" is already on line ", it->second, " (ids must be unique)"));
    }
    items.push_back(std::move(item));
  }
  if (in.bad()) return absl::DataLossError(absl::StrCat(list.string(), ": read error"));
  return items;
}

}  // namespace

MediaType media_type_of(const std::filesystem::path& path) {
  return contains(kImageExtensions, lower_extension(path)) ? MediaType::kImage : MediaType::kVideo;
}

bool is_media_file(const std::filesystem::path& path) {
  const std::string ext = lower_extension(path);
  return contains(kImageExtensions, ext) || contains(kVideoExtensions, ext);
}

absl::StatusOr<std::vector<CaptionItem>> read_caption_inputs(const std::filesystem::path& list) {
  std::error_code error;
  const bool directory = std::filesystem::is_directory(list, error);
  PLM_ASSIGN_OR_RETURN(std::vector<CaptionItem> items, directory ? read_directory(list) : read_list(list));
  for (size_t i = 0; i < items.size(); ++i) items[i].index = static_cast<int64_t>(i);
  return items;
}

std::vector<CaptionItem> shard_items(const std::vector<CaptionItem>& items, int replica, int num_replicas) {
  PLM_CHECK(num_replicas >= 1 && replica >= 0 && replica < num_replicas) << replica << " of " << num_replicas;
  std::vector<CaptionItem> shard;
  for (size_t i = replica; i < items.size(); i += num_replicas) shard.push_back(items[i]);
  return shard;
}

}  // namespace plm::caption
