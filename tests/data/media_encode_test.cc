// The PNG and MP4 writers (data/image_encode.h, data/video_encode.h): what they write reads back through
// plm's own decoders, and bad input or an unwritable path is an error that names the file.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "data/image_decode.h"
#include "data/image_encode.h"
#include "data/video.h"
#include "data/video_encode.h"
#include "tests/core/test_temp_dir.h"

namespace plm::data {
namespace {

using ::testing::HasSubstr;

RgbImage gradient(int width, int height, int shift) {
  RgbImage image(width, height);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      uint8_t* p = image.row(y) + x * kRgbChannels;
      p[0] = static_cast<uint8_t>(4 * x + shift);
      p[1] = static_cast<uint8_t>(4 * y);
      p[2] = static_cast<uint8_t>(128 + shift);
    }
  }
  return image;
}

TEST(ImageEncode, PngRoundTripsExactly) {
  const std::filesystem::path path = plm::testing::fresh_temp_dir() / "g.png";
  const RgbImage image = gradient(37, 21, 0);
  ASSERT_TRUE(write_png_file(path, image).ok());
  const absl::StatusOr<RgbImage> decoded = decode_image_file(path);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->width, 37);
  EXPECT_EQ(decoded->height, 21);
  EXPECT_EQ(decoded->pixels, image.pixels);
}

TEST(ImageEncode, AnUnwritablePathIsNamed) {
  const std::filesystem::path path = plm::testing::fresh_temp_dir() / "no-such-dir" / "g.png";
  EXPECT_THAT(write_png_file(path, gradient(4, 4, 0)).message(), HasSubstr("no-such-dir/g.png: write failed"));
}

TEST(VideoEncode, Mp4KeepsEveryFrameCloseToTheInput) {
  const std::filesystem::path path = plm::testing::fresh_temp_dir() / "v.mp4";
  std::vector<RgbImage> frames;
  for (int k = 0; k < 5; ++k) frames.push_back(gradient(32, 24, 10 * k));
  ASSERT_TRUE(write_mp4_file(path, frames, {.fps = 5}).ok());
  const absl::StatusOr<DecodedVideo> video = decode_video_file(path, FrameSampling{});
  ASSERT_TRUE(video.ok()) << video.status();
  ASSERT_EQ(video->frames.size(), 5u);
  EXPECT_NEAR(video->info.average_fps, 5.0, 1e-6);
  for (size_t k = 0; k < frames.size(); ++k) {
    double error = 0;
    for (size_t i = 0; i < frames[k].pixels.size(); ++i) {
      error += std::abs(static_cast<int>(frames[k].pixels[i]) - static_cast<int>(video->frames[k].pixels[i]));
    }
    EXPECT_LT(error / static_cast<double>(frames[k].pixels.size()), 6.0) << "frame " << k;  // lossy, but close
  }
}

TEST(VideoEncode, BadFramesAndPathsAreNamed) {
  const std::filesystem::path dir = plm::testing::fresh_temp_dir();
  EXPECT_THAT(write_mp4_file(dir / "odd.mp4", {gradient(33, 24, 0)}).message(), HasSubstr("odd.mp4: frames are 33x24"));
  EXPECT_THAT(write_mp4_file(dir / "none.mp4", {}).message(), HasSubstr("none.mp4: no frames"));
  EXPECT_THAT(write_mp4_file(dir / "mixed.mp4", {gradient(32, 24, 0), gradient(16, 24, 0)}).message(),
              HasSubstr("mixed.mp4: frame 1 is 16x24, frame 0 is 32x24"));
  EXPECT_THAT(write_mp4_file(dir / "missing" / "v.mp4", {gradient(32, 24, 0)}).message(),
              HasSubstr("missing/v.mp4: cannot open for writing"));
}

}  // namespace
}  // namespace plm::data
