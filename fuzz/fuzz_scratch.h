// What the fuzz targets share: writing an input to a scratch file for parsers that read paths (each input
// overwrites the same few files under tests/core/test_temp_dir.h's per-process folder, removed at exit), and the
// source tree's fixtures. Not thread-safe: libFuzzer runs one input at a time.
#pragma once

#include <filesystem>
#include <string_view>

namespace plm::fuzz {

// test_temp_root() / name, created on first use.
std::filesystem::path scratch_dir(std::string_view name);

// Writes `bytes` to `path`, replacing it. A failure is the harness's, not the input's, and aborts.
void write_file(const std::filesystem::path& path, std::string_view bytes);

// PLM_SOURCE_DIR / relative: committed fixtures the targets build their fixed inputs from.
std::filesystem::path source_path(std::string_view relative);

}  // namespace plm::fuzz
