// open_model_directory on the committed tiny checkpoints: everything but the weights, and the errors that name
// the file (a missing config, a processor whose tile size the vision tower cannot take).
#include "runtime/model_directory.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "tests/core/test_temp_dir.h"

namespace plm::runtime {
namespace {

const std::filesystem::path kModels = std::filesystem::path(PLM_SOURCE_DIR) / "tests/fixtures/models";

TEST(ModelDirectory, ReadsConfigTokenizerAndProcessor) {
  absl::StatusOr<ModelDirectory> dir = open_model_directory(kModels / "cls_tied");
  ASSERT_TRUE(dir.ok()) << dir.status();
  EXPECT_EQ(dir->config.vision.img_size, dir->processor.image.tile_size);
  EXPECT_EQ(dir->config.text.vocab_size, 128256);
  EXPECT_FALSE(dir->eos_token_ids().empty());
  EXPECT_FALSE(dir->tokenizer.encode("hello").empty());
}

TEST(ModelDirectory, MissingDirectoryNamesTheFile) {
  const absl::StatusOr<ModelDirectory> dir = open_model_directory("/nonexistent/plm");
  ASSERT_FALSE(dir.ok());
  EXPECT_THAT(std::string(dir.status().message()), ::testing::HasSubstr("/nonexistent/plm"));
}

TEST(ModelDirectory, ProcessorTileSizeMustMatchTheVisionTower) {
  const std::filesystem::path copy = testing::fresh_temp_dir();
  std::filesystem::copy(kModels / "cls_tied", copy, std::filesystem::copy_options::recursive);
  for (const char* name : {"preprocessor_config.json", "processor_config.json"}) {
    const std::filesystem::path p = copy / name;
    if (!std::filesystem::exists(p)) continue;
    std::ifstream in(p);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    for (size_t at = text.find("\"tile_size\": 56"); at != std::string::npos; at = text.find("\"tile_size\": 56")) {
      text.replace(at, 15, "\"tile_size\": 28");
    }
    std::ofstream(p) << text;
  }
  const absl::StatusOr<ModelDirectory> dir = open_model_directory(copy);
  ASSERT_FALSE(dir.ok());
  EXPECT_THAT(std::string(dir.status().message()), ::testing::HasSubstr("tile_size (28)"));
}

}  // namespace
}  // namespace plm::runtime
