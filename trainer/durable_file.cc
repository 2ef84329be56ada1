#include "trainer/durable_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"

namespace plm::trainer {
namespace {

std::string errno_text() { return std::strerror(errno); }

absl::Status os_error(const std::filesystem::path& path, std::string_view what) {
  return absl::InternalError(absl::StrCat(path.string(), ": ", absl::string_view(what.data(), what.size()),
                                          " failed: ", errno_text()));
}

class FdCloser {
 public:
  explicit FdCloser(int fd) : fd_(fd) {}
  ~FdCloser() {
    if (fd_ >= 0) ::close(fd_);
  }
  FdCloser(const FdCloser&) = delete;
  FdCloser& operator=(const FdCloser&) = delete;
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

absl::Status write_all(int fd, std::string_view bytes, const std::filesystem::path& path) {
  const char* p = bytes.data();
  size_t left = bytes.size();
  while (left > 0) {
    const ssize_t n = ::write(fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return os_error(path, "write");
    p += n;
    left -= static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

std::filesystem::path parent_or_dot(const std::filesystem::path& path) {
  const std::filesystem::path parent = path.parent_path();
  return parent.empty() ? std::filesystem::path(".") : parent;
}

}  // namespace

absl::Status write_file_durably(const std::filesystem::path& path, std::string_view bytes) {
  std::string temp_path = path.string() + ".tmp.XXXXXX";
  const int fd = ::mkstemp(temp_path.data());
  if (fd < 0) return os_error(path, "creating a temporary file");
  FdCloser closer(fd);
  auto write_and_rename = [&]() -> absl::Status {
    if (::fchmod(fd, 0644) != 0) return os_error(temp_path, "fchmod");
    PLM_RETURN_IF_ERROR(write_all(fd, bytes, temp_path));
    if (::fsync(fd) != 0) return os_error(temp_path, "fsync");
    if (::close(closer.release()) != 0) return os_error(temp_path, "close");
    if (::rename(temp_path.c_str(), path.c_str()) != 0) return os_error(path, "rename from " + temp_path);
    return absl::OkStatus();
  };
  if (absl::Status status = write_and_rename(); !status.ok()) {
    ::unlink(temp_path.c_str());
    return status;
  }
  return fsync_directory(parent_or_dot(path));
}

absl::Status fsync_directory(const std::filesystem::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return os_error(dir, "opening the directory for fsync");
  FdCloser closer(fd);
  if (::fsync(fd) != 0) return os_error(dir, "fsync of the directory");
  return absl::OkStatus();
}

absl::Status rename_durably(const std::filesystem::path& from, const std::filesystem::path& to) {
  if (::rename(from.c_str(), to.c_str()) != 0) return os_error(to, "rename from " + from.string());
  return fsync_directory(parent_or_dot(to));
}

absl::StatusOr<FileDigest> digest_file(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return os_error(path, "open");
  FdCloser closer(fd);
  constexpr size_t kChunkBytes = 1 << 20;
  std::vector<unsigned char> chunk(kChunkBytes);
  FileDigest digest;
  uLong crc = ::crc32(0L, Z_NULL, 0);
  while (true) {
    const ssize_t n = ::read(fd, chunk.data(), chunk.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return os_error(path, "read");
    if (n == 0) break;
    crc = ::crc32(crc, chunk.data(), static_cast<uInt>(n));
    digest.bytes += static_cast<uint64_t>(n);
  }
  digest.crc32 = static_cast<uint32_t>(crc);
  return digest;
}

}  // namespace plm::trainer
