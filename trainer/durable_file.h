// Crash-safe file primitives for checkpoints and logs: a file either has its old content or its complete new
// content after a crash (temp file in the same directory + fsync + rename + fsync of the directory), and the
// size + CRC-32 digest that checkpoint markers record. Errors name the path and the OS reason.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace plm::trainer {

// Replaces `path` with `bytes` atomically: `path`.tmp.XXXXXX in the same directory, fsync, rename over `path`,
// fsync of the directory. The temporary file is removed on failure.
absl::Status write_file_durably(const std::filesystem::path& path, std::string_view bytes);

// fsync of a directory, so that entries created, renamed or removed in it survive a crash.
absl::Status fsync_directory(const std::filesystem::path& dir);

// rename(2) of `from` to `to` (files or directories, same file system), then fsync of `to`'s parent.
absl::Status rename_durably(const std::filesystem::path& from, const std::filesystem::path& to);

struct FileDigest {
  uint64_t bytes = 0;
  uint32_t crc32 = 0;  // zlib / IEEE CRC-32 (what Python's zlib.crc32 gives), of the whole file
  bool operator==(const FileDigest&) const = default;
};

// Size and CRC-32 of a file, read in one streaming pass.
absl::StatusOr<FileDigest> digest_file(const std::filesystem::path& path);

}  // namespace plm::trainer
