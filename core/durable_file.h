// Crash-safe file writing for every output plm must not leave half-written (checkpoints, safetensors, caption
// outputs, logs, plots): after a crash a file has either its old content or its complete new content (a temporary
// file in the same directory + fsync + rename + fsync of the directory). Errors name the path and the OS reason.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace plm {

// An owned file descriptor, closed when destroyed.
class FileDescriptor {
 public:
  explicit FileDescriptor(int fd = -1) : fd_(fd) {}
  FileDescriptor(FileDescriptor&& other) noexcept;
  FileDescriptor& operator=(FileDescriptor&& other) noexcept;
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  ~FileDescriptor();

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  // close(2) with its error reported (a deferred write error may only show here); `path` names the file.
  absl::Status close(const std::filesystem::path& path);

 private:
  int fd_;
};

// Writes all `bytes` bytes at `data` to `fd`, retrying short writes and EINTR; an error names `path`.
absl::Status write_all(int fd, const void* data, size_t bytes, const std::filesystem::path& path);
inline absl::Status write_all(int fd, std::string_view bytes, const std::filesystem::path& path) {
  return write_all(fd, bytes.data(), bytes.size(), path);
}

// A file streamed to `path`.tmp.XXXXXX beside `path`; commit() fsyncs it, renames it over `path` and fsyncs the
// directory. Without commit() (an error on the way, an exception) the temporary file is removed.
class DurableFileWriter {
 public:
  static absl::StatusOr<DurableFileWriter> create(const std::filesystem::path& path);
  DurableFileWriter(DurableFileWriter&& other) noexcept;
  DurableFileWriter& operator=(DurableFileWriter&&) = delete;
  ~DurableFileWriter();

  absl::Status write(const void* data, size_t bytes) { return write_all(fd_.get(), data, bytes, temp_); }
  absl::Status write(std::string_view bytes) { return write(bytes.data(), bytes.size()); }
  absl::Status commit();

 private:
  DurableFileWriter(std::filesystem::path path, std::filesystem::path temp, FileDescriptor fd)
      : path_(std::move(path)), temp_(std::move(temp)), fd_(std::move(fd)) {}
  std::filesystem::path path_, temp_;
  FileDescriptor fd_;
  bool committed_ = false;
};

// Replaces `path` with `bytes` atomically and durably (a DurableFileWriter written at once).
absl::Status write_file_durably(const std::filesystem::path& path, std::string_view bytes);

// fsync of a directory, so that entries created, renamed or removed in it survive a crash.
absl::Status fsync_directory(const std::filesystem::path& dir);

// rename(2) of `from` to `to` (files or directories, same file system), then fsync of `to`'s parent.
absl::Status rename_durably(const std::filesystem::path& from, const std::filesystem::path& to);

}  // namespace plm
