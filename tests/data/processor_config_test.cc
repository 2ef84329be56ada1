// Processor configs in both layouts, and the refusal of values that are not what they claim to be or that would
// size an allocation without a bound (the cases fuzz/model_config found: float-to-int overflow, huge tiles).
#include "data/processor_config.h"

#include <gtest/gtest.h>

#include <string>

#include "tests/data/tokenizer_test_util.h"
#include "tests/model/model_test_util.h"

namespace plm::data {
namespace {

using ::plm::model::testing::FailsWith;
using ::plm::testing::fresh_temp_dir;
using ::plm::testing::write_test_file;

// A model directory holding only `file` with `json`.
absl::StatusOr<ProcessorConfig> load_only(const std::string& file, const std::string& json) {
  const std::filesystem::path dir = fresh_temp_dir(file);
  write_test_file(dir / file, json);
  return load_processor_config(dir);
}

TEST(ProcessorConfigTest, ReadsBothLayouts) {
  for (const char* model : {"cls_tied", "cls_tied_hub45"}) {
    SCOPED_TRACE(model);
    const absl::StatusOr<ProcessorConfig> config =
        load_processor_config(std::filesystem::path(PLM_SOURCE_DIR) / "tests/fixtures/models" / model);
    ASSERT_TRUE(config.ok()) << config.status();
    EXPECT_EQ(config->image.tile_size, 56);
    EXPECT_EQ(config->image.max_num_tiles, 4);
    EXPECT_EQ(config->video.height, 56);
    EXPECT_EQ(config->image_tokens_per_tile(), 4);
  }
  const absl::StatusOr<ProcessorConfig> plm_1b = load_processor_config(std::filesystem::path(PLM_SOURCE_DIR) / "configs/plm-1b");
  ASSERT_TRUE(plm_1b.ok()) << plm_1b.status();
  EXPECT_EQ(plm_1b->image.tile_size, 448);
  EXPECT_EQ(plm_1b->image.max_num_tiles, 36);
}

TEST(ProcessorConfigTest, IntegersMayBeWrittenAsIntegralFloats) {
  const absl::StatusOr<ProcessorConfig> config = load_only("preprocessor_config.json", R"({"tile_size": 448.0})");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->image.tile_size, 448);
}

TEST(ProcessorConfigTest, RefusesOutOfRangeAndNonIntegerSizes) {
  // 1e300 used to be cast to int (undefined behaviour).
  EXPECT_THAT(load_only("preprocessor_config.json", R"({"tile_size": 1e300})"),
              FailsWith("preprocessor_config.json", "\"tile_size\" must be an integer in [1, 8192], got 1e+300"));
  EXPECT_THAT(load_only("preprocessor_config.json", R"({"tile_size": 448.5})"), FailsWith("\"tile_size\""));
  EXPECT_THAT(load_only("preprocessor_config.json", R"({"tile_size": "448"})"), FailsWith("\"tile_size\""));
  EXPECT_THAT(load_only("preprocessor_config.json", R"({"max_num_tiles": 100000})"),
              FailsWith("\"max_num_tiles\" must be an integer in [0, 1024]"));
  EXPECT_THAT(load_only("processor_config.json", R"({"patch_size": 0})"), FailsWith("\"patch_size\""));
  EXPECT_THAT(load_only("processor_config.json", R"({"video_processor": {"size": {"height": -1, "width": 448}}})"),
              FailsWith("video_processor size", "\"height\""));
}

TEST(ProcessorConfigTest, RefusesImagesBeyondThePixelLimit) {
  // 8192-pixel tiles x (1024 + 1): 68.7G pixels, which process_image would have tried to allocate.
  EXPECT_THAT(load_only("preprocessor_config.json", R"({"tile_size": 8192, "max_num_tiles": 1024})"),
              FailsWith("(max_num_tiles 1024 + 1) x tile_size 8192^2 = 68786585600 pixels per image exceeds the limit"));
}

TEST(ProcessorConfigTest, RefusesNormalisationThatDividesByZeroOrOverflows) {
  EXPECT_THAT(load_only("preprocessor_config.json", R"({"image_std": [0.5, 0, 0.5]})"),
              FailsWith("\"image_std\" must be a number or 3 numbers, finite and non-zero"));
  EXPECT_THAT(load_only("preprocessor_config.json", R"({"image_mean": 1e300})"), FailsWith("\"image_mean\""));
  EXPECT_THAT(load_only("preprocessor_config.json", R"({"rescale_factor": 0})"),
              FailsWith("\"rescale_factor\" must be a positive number"));
}

}  // namespace
}  // namespace plm::data
