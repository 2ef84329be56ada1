#include "tests/data/sft_test_util.h"

#include <cstdlib>

#include "absl/strings/str_join.h"
#include "core/check.h"
#include "tests/data/tokenizer_test_util.h"

namespace plm::testing {

std::filesystem::path fixtures_dir() {
  const char* dir = std::getenv("PLM_TEST_DATA_DIR");
  return dir ? std::filesystem::path(dir) : std::filesystem::path(__FILE__).parent_path().parent_path() / "fixtures";
}

const data::ProcessorConfig& tiny_processor() {
  static const data::ProcessorConfig config = [] {
    absl::StatusOr<data::ProcessorConfig> loaded = data::load_processor_config(fixtures_dir() / "models" / "cls_tied");
    PLM_CHECK(loaded.ok()) << loaded.status().message();
    return *loaded;
  }();
  return config;
}

std::filesystem::path make_sft_dir(const std::string& name, const std::vector<std::string>& lines) {
  const std::filesystem::path dir = fresh_temp_dir(name);
  const std::filesystem::path inputs = fixtures_dir() / "models" / "inputs";
  std::filesystem::create_directories(dir / "media");
  std::filesystem::copy_file(inputs / "image_150x100.png", dir / "media" / "image.png");
  std::filesystem::copy_file(inputs / "video_64x48_4f.mp4", dir / "media" / "clip.mp4");
  write_test_file(dir / "train.jsonl", absl::StrJoin(lines, "\n") + "\n");
  return dir;
}

}  // namespace plm::testing
