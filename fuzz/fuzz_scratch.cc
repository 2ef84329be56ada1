#include "fuzz/fuzz_scratch.h"

#include <fstream>
#include <system_error>

#include "core/check.h"
#include "tests/core/test_temp_dir.h"

namespace plm::fuzz {

std::filesystem::path scratch_dir(std::string_view name) {
  const std::filesystem::path dir = testing::test_temp_root() / name;
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  PLM_CHECK(!error) << "cannot create " << dir << ": " << error.message();
  return dir;
}

void write_file(const std::filesystem::path& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  PLM_CHECK(out.good()) << "cannot write " << path;
}

std::filesystem::path source_path(std::string_view relative) {
  return std::filesystem::path(PLM_SOURCE_DIR) / relative;
}

}  // namespace plm::fuzz
