#include "core/durable_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/check.h"
#include "core/status_macros.h"

namespace plm {
namespace {

absl::Status os_error(const std::filesystem::path& path, std::string_view what) {
  return absl::InternalError(absl::StrCat(path.string(), ": ", absl::string_view(what.data(), what.size()),
                                          " failed: ", std::strerror(errno)));
}

std::filesystem::path parent_or_dot(const std::filesystem::path& path) {
  const std::filesystem::path parent = path.parent_path();
  return parent.empty() ? std::filesystem::path(".") : parent;
}

}  // namespace

FileDescriptor::FileDescriptor(FileDescriptor&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}

FileDescriptor& FileDescriptor::operator=(FileDescriptor&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

FileDescriptor::~FileDescriptor() {
  if (fd_ >= 0) ::close(fd_);
}

absl::Status FileDescriptor::close(const std::filesystem::path& path) {
  if (::close(std::exchange(fd_, -1)) != 0) return os_error(path, "close");
  return absl::OkStatus();
}

absl::Status write_all(int fd, const void* data, size_t bytes, const std::filesystem::path& path) {
  const auto* p = static_cast<const char*>(data);
  while (bytes > 0) {
    const ssize_t n = ::write(fd, p, bytes);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return os_error(path, "write");
    p += n;
    bytes -= static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::StatusOr<DurableFileWriter> DurableFileWriter::create(const std::filesystem::path& path) {
  std::string temp = path.string() + ".tmp.XXXXXX";
  FileDescriptor fd(::mkstemp(temp.data()));
  if (!fd.valid()) return os_error(path, "creating a temporary file");
  if (::fchmod(fd.get(), 0644) != 0) {
    const absl::Status status = os_error(temp, "fchmod");
    ::unlink(temp.c_str());
    return status;
  }
  return DurableFileWriter(path, std::move(temp), std::move(fd));
}

DurableFileWriter::DurableFileWriter(DurableFileWriter&& other) noexcept
    : path_(std::move(other.path_)),
      temp_(std::move(other.temp_)),
      fd_(std::move(other.fd_)),
      committed_(std::exchange(other.committed_, true)) {}  // the moved-from writer owns no temporary file

DurableFileWriter::~DurableFileWriter() {
  if (committed_) return;
  std::error_code ignored;
  std::filesystem::remove(temp_, ignored);
}

absl::Status DurableFileWriter::commit() {
  PLM_CHECK(!committed_) << path_ << ": committed twice";
  if (::fsync(fd_.get()) != 0) return os_error(temp_, "fsync");
  PLM_RETURN_IF_ERROR(fd_.close(temp_));
  if (::rename(temp_.c_str(), path_.c_str()) != 0) return os_error(path_, "rename from " + temp_.string());
  committed_ = true;
  return fsync_directory(parent_or_dot(path_));
}

absl::Status write_file_durably(const std::filesystem::path& path, std::string_view bytes) {
  PLM_ASSIGN_OR_RETURN(DurableFileWriter file, DurableFileWriter::create(path));
  PLM_RETURN_IF_ERROR(file.write(bytes));
  return file.commit();
}

absl::Status fsync_directory(const std::filesystem::path& dir) {
  FileDescriptor fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return os_error(dir, "opening the directory for fsync");
  if (::fsync(fd.get()) != 0) return os_error(dir, "fsync of the directory");
  return absl::OkStatus();
}

absl::Status rename_durably(const std::filesystem::path& from, const std::filesystem::path& to) {
  if (::rename(from.c_str(), to.c_str()) != 0) return os_error(to, "rename from " + from.string());
  return fsync_directory(parent_or_dot(to));
}

}  // namespace plm
