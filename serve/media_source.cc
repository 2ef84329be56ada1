#include "serve/media_source.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "core/status_macros.h"

namespace plm::serve {

namespace {

absl::string_view sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// %XX escapes decoded; false on a malformed escape.
bool percent_decode(std::string_view in, std::string* out) {
  out->clear();
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out->push_back(in[i]);
      continue;
    }
    if (i + 2 >= in.size()) return false;
    const auto hex = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      c = static_cast<char>(absl::ascii_tolower(static_cast<unsigned char>(c)));
      return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    };
    const int hi = hex(in[i + 1]), lo = hex(in[i + 2]);
    if (hi < 0 || lo < 0) return false;
    out->push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return true;
}

bool is_inside(const std::filesystem::path& file, const std::filesystem::path& root) {
  const auto [r, f] = std::mismatch(root.begin(), root.end(), file.begin(), file.end());
  return r == root.end();
}

// A new private file in `dir` holding `bytes`.
absl::StatusOr<std::filesystem::path> write_scratch_file(const std::filesystem::path& dir, const std::string& bytes) {
  static std::atomic<uint64_t> counter{0};
  const std::filesystem::path path =
      dir / absl::StrCat("media_", getpid(), "_", counter.fetch_add(1, std::memory_order_relaxed));
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return absl::InternalError(absl::StrCat("cannot create a scratch file for a data: URL: ", std::strerror(errno)));
  size_t written = 0;
  while (written < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + written, bytes.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int error = errno;
      ::close(fd);
      std::filesystem::remove(path);
      return absl::InternalError(absl::StrCat("cannot write a scratch file for a data: URL: ", std::strerror(error)));
    }
    written += static_cast<size_t>(n);
  }
  ::close(fd);
  return path;
}

}  // namespace

absl::StatusOr<DataUrl> parse_data_url(std::string_view url) {
  if (!absl::StartsWithIgnoreCase(sv(url), "data:")) return absl::InvalidArgumentError("not a data: URL");
  const size_t comma = url.find(',');
  if (comma == std::string_view::npos) return absl::InvalidArgumentError("a data: URL without a comma before its data");
  const std::string_view header = url.substr(5, comma - 5);
  const std::string_view payload = url.substr(comma + 1);
  DataUrl out;
  const size_t semicolon = header.find(';');
  out.media_type = absl::AsciiStrToLower(sv(header.substr(0, semicolon)));
  bool base64 = false;
  if (semicolon != std::string_view::npos) {
    for (absl::string_view param : absl::StrSplit(sv(header.substr(semicolon + 1)), ';')) {
      if (absl::EqualsIgnoreCase(param, "base64")) base64 = true;
    }
  }
  if (base64) {
    if (!absl::Base64Unescape(sv(payload), &out.bytes)) return absl::InvalidArgumentError("a data: URL with invalid base64");
  } else if (!percent_decode(payload, &out.bytes)) {
    return absl::InvalidArgumentError("a data: URL with an invalid %-escape");
  }
  if (out.bytes.empty()) return absl::InvalidArgumentError("a data: URL with no data");
  return out;
}

absl::StatusOr<std::filesystem::path> confined_media_file(std::string_view reference,
                                                          const std::filesystem::path& root) {
  std::string path_text;
  if (absl::StartsWithIgnoreCase(sv(reference), "file://")) {
    std::string_view rest = reference.substr(7);
    // file:///abs or file://localhost/abs; any other host is remote.
    if (absl::StartsWithIgnoreCase(sv(rest), "localhost/")) rest.remove_prefix(9);
    if (rest.empty() || rest[0] != '/') return absl::InvalidArgumentError("a file:// URL must name a local absolute path");
    if (!percent_decode(rest, &path_text)) return absl::InvalidArgumentError("a file:// URL with an invalid %-escape");
  } else {
    path_text = std::string(reference);
  }
  if (path_text.find('\0') != std::string::npos) return absl::InvalidArgumentError("a media path with a NUL byte");
  std::error_code error;
  const std::filesystem::path canonical_root = std::filesystem::canonical(root, error);
  if (error) return absl::FailedPreconditionError(absl::StrCat("the media root is not readable: ", error.message()));
  std::filesystem::path path(path_text);
  if (path.is_relative()) path = canonical_root / path;
  const auto outside = [&] { return absl::PermissionDeniedError(absl::StrCat(sv(reference), ": outside the media root")); };
  // Where the path leads as far as it exists (its symlinks and `..` resolved), before asking whether the file does:
  // a path outside the root is refused alike whether or not something is there, so refusals reveal nothing outside.
  const std::filesystem::path reached = std::filesystem::weakly_canonical(path, error);
  if (error || !is_inside(reached, canonical_root)) return outside();
  const std::filesystem::path file = std::filesystem::canonical(reached, error);
  if (error) return absl::NotFoundError(absl::StrCat(sv(reference), ": no such media file under the media root"));
  if (!is_inside(file, canonical_root)) return outside();
  if (!std::filesystem::is_regular_file(file, error)) {
    return absl::InvalidArgumentError(absl::StrCat(sv(reference), ": not a regular file"));
  }
  return file;
}

absl::StatusOr<LocalMedia> LocalMedia::localize(std::vector<data::ChatMessage>& messages, const MediaPolicy& policy) {
  LocalMedia local;
  int index[2] = {0, 0};  // images, videos
  for (data::ChatMessage& message : messages) {
    for (data::ContentPart& part : message.parts) {
      if (part.type == data::ContentPart::Type::kText) continue;
      const bool image = part.type == data::ContentPart::Type::kImage;
      const char* kind = image ? "image" : "video";
      const int n = index[image ? 0 : 1]++;
      if (index[0] + index[1] > policy.max_media_items) {
        return absl::ResourceExhaustedError(
            absl::StrCat("more than ", policy.max_media_items, " images and videos in one request"));
      }
      const std::string label = absl::StrCat(kind, " ", n);
      if (absl::StartsWithIgnoreCase(part.url, "data:")) {
        absl::StatusOr<DataUrl> url = parse_data_url(part.url);
        if (!url.ok()) return absl::InvalidArgumentError(absl::StrCat(label, ": ", url.status().message()));
        if (!absl::StartsWith(url->media_type, kind) || url->media_type.size() <= std::strlen(kind) ||
            url->media_type[std::strlen(kind)] != '/') {
          return absl::InvalidArgumentError(absl::StrCat(label, ": a data: URL of type \"", url->media_type,
                                                         "\" where an ", kind, "/* type is expected"));
        }
        PLM_ASSIGN_OR_RETURN(const std::filesystem::path file, write_scratch_file(policy.scratch_dir, url->bytes));
        local.scratch_files_.push_back(file);
        local.names_.emplace_back(file.string(), absl::StrCat(label, " (data: URL)"));
        part.url = file.string();
        continue;
      }
      const size_t scheme = part.url.find("://");
      if (scheme != std::string::npos && !absl::StartsWithIgnoreCase(part.url, "file://")) {
        return absl::InvalidArgumentError(absl::StrCat(label, ": ", part.url.substr(0, scheme),
                                                       ":// URLs are not fetched; send a data: URL or a file under the "
                                                       "server's media root"));
      }
      if (!policy.media_root) {
        return absl::InvalidArgumentError(
            absl::StrCat(label, ": this server reads no media files (no --media-root); send a data: URL"));
      }
      absl::StatusOr<std::filesystem::path> file = confined_media_file(part.url, *policy.media_root);
      if (!file.ok()) return absl::Status(file.status().code(), absl::StrCat(label, ": ", file.status().message()));
      local.names_.emplace_back(file->string(), absl::StrCat(label, " (", part.url, ")"));
      part.url = file->string();
    }
  }
  return local;
}

LocalMedia::~LocalMedia() {
  for (const std::filesystem::path& file : scratch_files_) {
    std::error_code ignored;
    std::filesystem::remove(file, ignored);
  }
}

std::string LocalMedia::client_message(std::string_view message) const {
  std::string out(message);
  for (const auto& [local, name] : names_) out = absl::StrReplaceAll(out, {{local, name}});
  return out;
}

}  // namespace plm::serve
