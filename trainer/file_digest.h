// The size + CRC-32 digest that checkpoint markers record for each file (crash-safe writing itself is
// core/durable_file.h).
#pragma once

#include <cstdint>
#include <filesystem>

#include "absl/status/statusor.h"

namespace plm::trainer {

struct FileDigest {
  uint64_t bytes = 0;
  uint32_t crc32 = 0;  // zlib / IEEE CRC-32 (what Python's zlib.crc32 gives), of the whole file
  bool operator==(const FileDigest&) const = default;
};

// Size and CRC-32 of a file, read in one streaming pass. Errors name the path and the OS reason.
absl::StatusOr<FileDigest> digest_file(const std::filesystem::path& path);

}  // namespace plm::trainer
