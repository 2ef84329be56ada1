// Whole-file reads for the data loaders; errors name the path and the OS reason.
#pragma once

#include <filesystem>
#include <string>

#include "absl/status/statusor.h"

namespace plm::data {

absl::StatusOr<std::string> read_file(const std::filesystem::path& path);

}  // namespace plm::data
