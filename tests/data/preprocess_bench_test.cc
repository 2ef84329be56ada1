// Preprocessing speed on this machine, printed for comparison with tools/reference/bench_preprocessing.py
// (HF on the same files). Inputs: $PLM_PREPROCESS_BENCH_IMAGE / $PLM_PREPROCESS_BENCH_VIDEO, or the
// fixtures large_1800x1200.jpg (36 tiles + thumbnail) and h264_160x96.mkv (32 of 40 frames).
#include "data/preprocess_bench.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>

#include "tests/data/preprocessing_fixtures.h"

namespace plm::data {
namespace {

std::filesystem::path input_or(const char* variable, const char* fixture) {
  const char* path = std::getenv(variable);
  return path ? std::filesystem::path(path) : ::plm::testing::preprocessing_input(fixture);
}

TEST(PreprocessBenchTest, ImageThumbTile) {
  const auto path = input_or("PLM_PREPROCESS_BENCH_IMAGE", "large_1800x1200.jpg");
  absl::StatusOr<ImageBenchResult> result = measure_image_preprocessing(path, {}, 3);
  ASSERT_TRUE(result.ok()) << result.status();
  std::printf("image %s: %d tiles, decode %.1f ms + thumb+tile %.1f ms = %.1f ms/image\n",
              path.filename().c_str(), result->num_tiles, result->decode_ms, result->preprocess_ms,
              result->total_ms());
  EXPECT_GT(result->num_tiles, 1);
}

TEST(PreprocessBenchTest, VideoFrames) {
  const auto path = input_or("PLM_PREPROCESS_BENCH_VIDEO", "h264_160x96.mkv");
  absl::StatusOr<VideoBenchResult> result = measure_video_preprocessing(path, {.num_frames = 32}, {}, 3);
  ASSERT_TRUE(result.ok()) << result.status();
  std::printf("video %s: %lld frames in %.1f ms = %.1f frames/s (decode + 448x448 preprocessing)\n",
              path.filename().c_str(), static_cast<long long>(result->num_frames), result->seconds * 1e3,
              result->frames_per_second());
  EXPECT_EQ(result->num_frames, 32);
}

}  // namespace
}  // namespace plm::data
