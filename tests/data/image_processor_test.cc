// thumb+tile and vanilla preprocessing against HF PerceptionLMImageProcessor (transformers 5.23) on the
// fixture images: identical grids, and pixel values compared level by level (tile 42, all stored) or by
// CRC-32 plus stored tiles (tile 448, the real config). The tolerance is 1e-5 of the range [-1, 1].
#include "data/image_processor.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "tests/data/preprocessing_fixtures.h"

namespace plm::data {
namespace {

using ::plm::testing::check_tile;
using ::plm::testing::crc_list;
using ::plm::testing::expected_u8;
using ::plm::testing::preprocessing_input;
using ::plm::testing::preprocessing_manifest;

constexpr double kTolerance = 1e-5 * 2.0;  // 1e-5 of the pixel value range

ImageProcessorConfig config_from_manifest(const std::string& name) {
  const nlohmann::json& c = preprocessing_manifest()["image_configs"][name];
  ImageProcessorConfig config;
  config.tile_size = c["tile_size"];
  config.max_num_tiles = c["max_num_tiles"];
  config.vision_input_type =
      c["vision_input_type"] == "thumb+tile" ? VisionInputType::kThumbTile : VisionInputType::kVanilla;
  return config;
}

// Processes every fixture image with one config and compares with HF. Returns the largest |diff| seen
// on the stored tiles.
double check_config(const std::string& config_name) {
  const ImageProcessorConfig config = config_from_manifest(config_name);
  double max_diff = 0.0;
  int num_tiles_checked = 0, num_tiles_with_levels = 0;
  for (const auto& [name, entry] : preprocessing_manifest()["images"].items()) {
    SCOPED_TRACE(config_name + " " + name);
    absl::StatusOr<ProcessedImage> processed = load_and_process_image(preprocessing_input(name), config);
    if (!processed.ok()) {
      ADD_FAILURE() << processed.status();
      continue;
    }
    const nlohmann::json& expected = entry[config_name];
    const Tensor pixels = processed->pixel_values;
    EXPECT_EQ(pixels.size(0), expected["num_tiles"].get<int64_t>());
    EXPECT_EQ(pixels.shape(), (Shape{pixels.size(0), 3, config.tile_size, config.tile_size}));
    if (expected.contains("grid")) {
      EXPECT_EQ(processed->grid, (TileGrid{expected["grid"][0], expected["grid"][1]}));
    }
    const std::vector<uint32_t> crcs = crc_list(expected["tile_crc32"]);
    const testing::U8Array* all_levels = expected_u8(config_name + "/" + name);
    const size_t tile_floats = static_cast<size_t>(3) * config.tile_size * config.tile_size;
    for (int64_t t = 0; t < std::min<int64_t>(pixels.size(0), crcs.size()); ++t) {
      const testing::U8Array* one_tile = expected_u8(config_name + "/" + name + "/tile" + std::to_string(t));
      const uint8_t* levels = all_levels ? all_levels->data.data() + t * tile_floats
                                         : one_tile ? one_tile->data.data() : nullptr;
      const testing::TileCheck check = check_tile(pixels.data_as<float>() + t * tile_floats, tile_floats, levels);
      EXPECT_TRUE(check.all_levels) << "tile " << t;
      EXPECT_EQ(check.crc32, crcs[t]) << "tile " << t;
      max_diff = std::max(max_diff, check.max_abs_diff);
      ++num_tiles_checked;
      num_tiles_with_levels += levels != nullptr;
    }
  }
  std::printf("%s: %d tiles match by CRC-32, %d also value by value: max |ours - HF| = %g\n", config_name.c_str(),
              num_tiles_checked, num_tiles_with_levels, max_diff);
  EXPECT_GT(num_tiles_checked, 0);
  return max_diff;
}

TEST(ImageProcessorTest, GridChoiceMatchesHfOnTheTable) {
  int num_rows = 0;
  for (const auto& row : preprocessing_manifest()["grids"]) {
    const int tile = row[0], max_tiles = row[1], width = row[2], height = row[3];
    EXPECT_EQ(choose_tile_grid(width, height, tile, max_tiles), (TileGrid{row[4], row[5]}))
        << width << "x" << height << " tile " << tile << " max " << max_tiles;
    ++num_rows;
  }
  EXPECT_GE(num_rows, 1000);
}

TEST(ImageProcessorTest, GridChoiceSpecExamples) {
  // spec/plm_spec.md §3.2 worked examples (tile 448, 36 tiles unless noted).
  EXPECT_EQ(choose_tile_grid(500, 450, 448, 4), (TileGrid{2, 2}));
  EXPECT_EQ(choose_tile_grid(640, 480, 448, 36), (TileGrid{7, 5}));
  EXPECT_EQ(choose_tile_grid(1920, 1080, 448, 36), (TileGrid{8, 4}));
  EXPECT_EQ(choose_tile_grid(3840, 2160, 448, 36), (TileGrid{7, 4}));
  EXPECT_EQ(choose_tile_grid(4000, 3000, 448, 36), (TileGrid{4, 3}));
  EXPECT_EQ(choose_tile_grid(800, 2000, 448, 36), (TileGrid{4, 9}));
  EXPECT_EQ(choose_tile_grid(1000, 100, 448, 36), (TileGrid{18, 2}));
  EXPECT_EQ(choose_tile_grid(7000, 1000, 448, 36), (TileGrid{14, 2}));
  EXPECT_EQ(choose_tile_grid(10000, 10000, 448, 36), (TileGrid{6, 6}));
  EXPECT_EQ(choose_tile_grid(400, 400, 16, 4), (TileGrid{2, 2}));
  EXPECT_EQ(choose_tile_grid(451, 300, 448, 1), (TileGrid{1, 1}));
}

TEST(ImageProcessorTest, SmallTilesMatchHfValueByValue) { EXPECT_LE(check_config("small"), kTolerance); }

TEST(ImageProcessorTest, RealConfigMatchesHf) { EXPECT_LE(check_config("default"), kTolerance); }

TEST(ImageProcessorTest, VanillaMatchesHf) { EXPECT_LE(check_config("vanilla"), kTolerance); }

TEST(ImageProcessorTest, OneTileStillEmitsThumbnailAndTile) {
  // §3.7: thumb+tile with max_num_tiles 1 gives the thumbnail plus one identical 1x1 tile.
  RgbImage image(30, 20);
  for (size_t i = 0; i < image.pixels.size(); ++i) image.pixels[i] = static_cast<uint8_t>(i * 7);
  const ProcessedImage processed = process_image(image, {.tile_size = 14, .max_num_tiles = 1});
  ASSERT_EQ(processed.pixel_values.size(0), 2);
  const float* p = processed.pixel_values.data_as<float>();
  EXPECT_TRUE(std::equal(p, p + 3 * 14 * 14, p + 3 * 14 * 14));
}

TEST(ImageProcessorTest, NormalisationIsHfsF32Formula) {
  const PixelNormalizer normalizer(1.0 / 255.0, {0.5f, 0.5f, 0.5f}, {0.5f, 0.5f, 0.5f});
  RgbImage image(256, 1);
  for (int v = 0; v < 256; ++v) image.pixels[v * 3] = image.pixels[v * 3 + 1] = image.pixels[v * 3 + 2] = v;
  std::vector<float> out(3 * 256);
  normalizer.write_chw(image, 0, 0, 256, 1, out.data());
  for (int v = 0; v < 256; ++v) EXPECT_EQ(out[v], (static_cast<float>(v) - 127.5f) / 127.5f) << v;
  EXPECT_EQ(out[0], -1.0f);
  EXPECT_EQ(out[255], 1.0f);
}

TEST(ImageProcessorTest, LoadReportsDecodeErrors) {
  absl::StatusOr<ProcessedImage> processed =
      load_and_process_image(preprocessing_input("huge_header_100000x100000.png"), {});
  EXPECT_EQ(processed.status().code(), absl::StatusCode::kResourceExhausted);
}

}  // namespace
}  // namespace plm::data
