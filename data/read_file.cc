// read_file: fopen/fread into a string; failures carry errno's status code and text.
#include "data/read_file.h"

#include <cerrno>
#include <cstdio>
#include <memory>

#include "absl/strings/str_cat.h"

namespace plm::data {

absl::StatusOr<std::string> read_file(const std::filesystem::path& path) {
  std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!file) {
    const int error = errno;
    return absl::ErrnoToStatus(error, absl::StrCat(path.string(), ": cannot open"));
  }
  std::string bytes;
  char buffer[1 << 16];
  size_t count;
  while ((count = std::fread(buffer, 1, sizeof(buffer), file.get())) > 0) bytes.append(buffer, count);
  if (std::ferror(file.get())) return absl::ErrnoToStatus(errno, absl::StrCat(path.string(), ": read error"));
  return bytes;
}

}  // namespace plm::data
