// Where a request's media may come from. plm never fetches URLs: an image or video is either a data: URL (its
// bytes travel in the request) or a file under the server's --media-root, named by a relative path, an absolute
// path or a file:// URL, and confined there after every symlink is resolved (no "..", no link out of the root).
// LocalMedia rewrites a conversation's media parts to local files the decoders read: data: URL payloads go to
// private scratch files, deleted with the LocalMedia. Thread-safe (no shared state beyond the file system).
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "data/chat_template.h"

namespace plm::serve {

struct MediaPolicy {
  std::optional<std::filesystem::path> media_root;  // files are served from under it only; none: no files at all
  std::filesystem::path scratch_dir;                // data: URL payloads are written here (must exist)
  int max_media_items = 8;                          // images + videos in one request
};

struct DataUrl {
  std::string media_type;  // "image/png"; lowercased, parameters dropped
  std::string bytes;
};

// RFC 2397 data: URLs, base64 or percent-encoded. Errors name the problem (not the payload).
absl::StatusOr<DataUrl> parse_data_url(std::string_view url);

// The canonical file `reference` (a path or file:// URL; relative paths are relative to `root`) names, when it
// is a regular file inside the canonical `root`. PermissionDenied when it resolves outside, whether or not a file is
// there (a refusal tells nothing about the outside); NotFound when absent inside.
absl::StatusOr<std::filesystem::path> confined_media_file(std::string_view reference, const std::filesystem::path& root);

class LocalMedia {
 public:
  // Rewrites the url of every media part of `messages` to a local file. Errors: InvalidArgument (a remote URL, a
  // malformed data: URL, a file without --media-root), PermissionDenied (outside the root), NotFound,
  // ResourceExhausted (more than max_media_items).
  static absl::StatusOr<LocalMedia> localize(std::vector<data::ChatMessage>& messages, const MediaPolicy& policy);

  LocalMedia(LocalMedia&&) noexcept = default;
  LocalMedia& operator=(LocalMedia&&) noexcept = default;
  LocalMedia(const LocalMedia&) = delete;
  LocalMedia& operator=(const LocalMedia&) = delete;
  ~LocalMedia();

  // `message` with every local path replaced by the name the client knows the item by ("image 0 (data: URL)",
  // "video 1 (clips/a.mp4)" with the path as given), so errors never show server paths.
  std::string client_message(std::string_view message) const;

 private:
  LocalMedia() = default;
  std::vector<std::filesystem::path> scratch_files_;
  std::vector<std::pair<std::string, std::string>> names_;  // local path -> client's name
};

}  // namespace plm::serve
