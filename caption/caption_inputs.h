// The items of a caption job, in input order, from one of three kinds of list: a directory (every video and image
// file under it, recursively, sorted by relative path; id = that path), a JSONL file (.jsonl: one object per line
// with "path" and optional "id" (default: the path) and "prompt"), or a text file of paths (one per line; blank
// lines and lines starting with '#' skipped; id = the path as written). Ids must be unique. Relative paths in a
// list are relative to the list's folder. Data parallelism: replica r of n takes items r, r + n, r + 2n, ...
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace plm::caption {

enum class MediaType { kVideo, kImage };

struct CaptionItem {
  int64_t index = 0;                  // position in the input order
  std::string id{};
  std::string path{};                   // as given (a directory's items: the full path)
  std::optional<std::string> prompt{};  // per-item prompt (JSONL); else the job's
  MediaType type = MediaType::kVideo;
};

// By extension: .jpg/.jpeg/.png are images; anything else is read as a video (FFmpeg decides; a file that is
// neither gives an error line).
MediaType media_type_of(const std::filesystem::path& path);
// Whether a directory listing takes this file: a known video or image extension.
bool is_media_file(const std::filesystem::path& path);

// Errors name the list and the line (InvalidArgument: a malformed JSONL line, a duplicate id; NotFound: no list).
absl::StatusOr<std::vector<CaptionItem>> read_caption_inputs(const std::filesystem::path& list);

// Items replica `replica` of `num_replicas` captions (round robin over the input order).
std::vector<CaptionItem> shard_items(const std::vector<CaptionItem>& items, int replica, int num_replicas);

}  // namespace plm::caption
