#include "trainer/file_digest.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/durable_file.h"

namespace plm::trainer {

absl::StatusOr<FileDigest> digest_file(const std::filesystem::path& path) {
  const FileDescriptor fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return absl::InternalError(absl::StrCat(path.string(), ": open failed: ", std::strerror(errno)));
  constexpr size_t kChunkBytes = 1 << 20;
  std::vector<unsigned char> chunk(kChunkBytes);
  FileDigest digest;
  uLong crc = ::crc32(0L, Z_NULL, 0);
  while (true) {
    const ssize_t n = ::read(fd.get(), chunk.data(), chunk.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return absl::InternalError(absl::StrCat(path.string(), ": read failed: ", std::strerror(errno)));
    if (n == 0) break;
    crc = ::crc32(crc, chunk.data(), static_cast<uInt>(n));
    digest.bytes += static_cast<uint64_t>(n);
  }
  digest.crc32 = static_cast<uint32_t>(crc);
  return digest;
}

}  // namespace plm::trainer
