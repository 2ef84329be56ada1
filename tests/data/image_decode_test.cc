// Image decoding against what HF 5.23 decodes (torchcodec decode_image, mode RGB, EXIF applied), and the
// refusal of bad files: truncated, corrupt, not an image, too large, empty, missing.
#include "data/image_decode.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <random>
#include <string>

#include "tests/data/preprocessing_fixtures.h"
#include "tests/data/tokenizer_test_util.h"

namespace plm::data {
namespace {

using ::plm::testing::crc32_of;
using ::plm::testing::expected_u8;
using ::plm::testing::fresh_temp_dir;
using ::plm::testing::preprocessing_input;
using ::plm::testing::preprocessing_manifest;
using ::plm::testing::read_test_file;
using ::plm::testing::write_test_file;

TEST(ImageDecodeTest, EveryFixtureDecodesAsHfDoes) {
  int num_compared_whole = 0;
  for (const auto& [name, entry] : preprocessing_manifest()["images"].items()) {
    SCOPED_TRACE(name);
    absl::StatusOr<RgbImage> image = decode_image_file(preprocessing_input(name));
    ASSERT_TRUE(image.ok()) << image.status();
    EXPECT_EQ(image->width, entry["width"].get<int>());
    EXPECT_EQ(image->height, entry["height"].get<int>());
    EXPECT_EQ(crc32_of(image->pixels.data(), image->pixels.size()), entry["decoded_crc32"].get<uint32_t>());
    if (const testing::U8Array* expected = expected_u8("decoded/" + name)) {
      int max_diff = 0;
      for (size_t i = 0; i < image->pixels.size(); ++i) {
        max_diff = std::max(max_diff, std::abs(int{image->pixels[i]} - int{expected->data[i]}));
      }
      EXPECT_EQ(max_diff, 0);
      ++num_compared_whole;
    }
  }
  EXPECT_GE(num_compared_whole, 8);
}

TEST(ImageDecodeTest, ExifOrientationMovesPixelsAsTorchcodec) {
  // A 3x2 image whose pixel (x, y) holds the value 10 * y + x in all channels.
  RgbImage image(3, 2);
  for (int y = 0; y < 2; ++y)
    for (int x = 0; x < 3; ++x)
      for (int c = 0; c < 3; ++c) image.row(y)[x * 3 + c] = static_cast<uint8_t>(10 * y + x);
  auto grid = [](const RgbImage& im) {
    std::string s;
    for (int y = 0; y < im.height; ++y) {
      for (int x = 0; x < im.width; ++x) s += std::to_string(im.row(y)[x * 3]) + (x + 1 < im.width ? " " : "");
      s += y + 1 < im.height ? "|" : "";
    }
    return s;
  };
  EXPECT_EQ(grid(apply_exif_orientation(image, 0)), "0 1 2|10 11 12");
  EXPECT_EQ(grid(apply_exif_orientation(image, 2)), "2 1 0|12 11 10");
  EXPECT_EQ(grid(apply_exif_orientation(image, 3)), "12 11 10|2 1 0");
  EXPECT_EQ(grid(apply_exif_orientation(image, 4)), "10 11 12|0 1 2");
  EXPECT_EQ(grid(apply_exif_orientation(image, 5)), "0 10|1 11|2 12");  // transpose
  EXPECT_EQ(grid(apply_exif_orientation(image, 6)), "10 0|11 1|12 2");  // rotate 90 clockwise
  EXPECT_EQ(grid(apply_exif_orientation(image, 7)), "12 2|11 1|10 0");
  EXPECT_EQ(grid(apply_exif_orientation(image, 8)), "2 12|1 11|0 10");  // rotate 90 counter-clockwise
}

TEST(ImageDecodeTest, ExifTiffParsing) {
  // Little-endian TIFF: header, IFD at 8 with two entries, orientation (SHORT) = 6 in the second.
  const uint8_t little[] = {'I', 'I', 42, 0, 8, 0, 0, 0, 2, 0,                  // header, 2 entries
                            0x0f, 0x01, 2, 0, 4, 0, 0, 0, 'a', 'b', 'c', 0,  // Make
                            0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0};       // Orientation
  EXPECT_EQ(exif_orientation_of_tiff(little, sizeof(little)), 6);
  const uint8_t big[] = {'M', 'M', 0, 42, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 8, 0, 0};
  EXPECT_EQ(exif_orientation_of_tiff(big, sizeof(big)), 8);
  EXPECT_EQ(exif_orientation_of_tiff(big, 12), 0);  // cut inside the entry
  const uint8_t mixed[] = {'I', 'M', 42, 0, 8, 0, 0, 0};
  EXPECT_EQ(exif_orientation_of_tiff(mixed, sizeof(mixed)), 0);
  const uint8_t far_ifd[] = {'I', 'I', 42, 0, 0xff, 0xff, 0xff, 0xff};
  EXPECT_EQ(exif_orientation_of_tiff(far_ifd, sizeof(far_ifd)), 0);
}

// The message must name the file; the code says what went wrong.
void expect_refused(const std::filesystem::path& path, absl::StatusCode code, const std::string& words) {
  absl::StatusOr<RgbImage> image = decode_image_file(path);
  ASSERT_FALSE(image.ok()) << path;
  EXPECT_EQ(image.status().code(), code) << image.status();
  EXPECT_NE(image.status().message().find(path.string()), std::string::npos) << image.status();
  EXPECT_NE(image.status().message().find(words), std::string::npos) << image.status();
}

TEST(ImageDecodeTest, RefusesTruncatedFiles) {
  const auto dir = fresh_temp_dir("image_decode_truncated");
  for (const char* name : {"rgb_640x480.jpg", "progressive_444_300x200.jpg", "square_448.png",
                           "interlaced_130x90.png"}) {
    const std::string bytes = read_test_file(preprocessing_input(name));
    for (double fraction : {0.5, 0.95}) {
      const auto path = dir / (std::to_string(static_cast<int>(fraction * 100)) + "_" + name);
      write_test_file(path, std::string_view(bytes).substr(0, static_cast<size_t>(bytes.size() * fraction)));
      const bool is_jpeg = path.extension() == ".jpg";
      expect_refused(path, absl::StatusCode::kDataLoss, is_jpeg ? "truncated JPEG" : "corrupt PNG");
    }
    const auto header_only = dir / (std::string("header_") + name);
    write_test_file(header_only, std::string_view(bytes).substr(0, 20));
    expect_refused(header_only, absl::StatusCode::kInvalidArgument, "header");
  }
}

TEST(ImageDecodeTest, RefusesFilesThatAreNotImages) {
  const auto dir = fresh_temp_dir("image_decode_not_images");
  write_test_file(dir / "notes.jpg", "this is a text file, not a JPEG\n");
  expect_refused(dir / "notes.jpg", absl::StatusCode::kInvalidArgument, "not a JPEG or PNG file");
  write_test_file(dir / "empty.png", "");
  expect_refused(dir / "empty.png", absl::StatusCode::kInvalidArgument, "empty file");
  expect_refused(dir / "missing.png", absl::StatusCode::kNotFound, "cannot open");
}

TEST(ImageDecodeTest, RefusesHugeHeadersBeforeAllocating) {
  // 100000 x 100000 x 3 bytes would be 30 GB; the check comes first, so this is quick and small.
  expect_refused(preprocessing_input("huge_header_100000x100000.png"), absl::StatusCode::kResourceExhausted,
                 "100000x100000");
  expect_refused(preprocessing_input("huge_header_65000x65000.jpg"), absl::StatusCode::kResourceExhausted,
                 "65000x65000");
  absl::StatusOr<RgbImage> small = decode_image_file(preprocessing_input("rgb_640x480.jpg"), {.max_pixels = 1000});
  EXPECT_EQ(small.status().code(), absl::StatusCode::kResourceExhausted);
}

TEST(ImageDecodeTest, CorruptBytesNeverCrash) {
  std::mt19937 rng(7);
  int num_refused = 0, num_decoded = 0;
  for (const char* name : {"progressive_444_300x200.jpg", "grey_257x129.jpg", "palette_200x150.png",
                           "grey_alpha_150x100.png", "interlaced_130x90.png"}) {
    const std::string original = read_test_file(preprocessing_input(name));
    for (int trial = 0; trial < 40; ++trial) {
      std::string bytes = original;
      for (int k = 0; k < 1 + trial % 8; ++k) bytes[rng() % bytes.size()] = static_cast<char>(rng());
      absl::StatusOr<RgbImage> image = decode_image(bytes, name);
      if (image.ok()) {
        EXPECT_EQ(image->pixels.size(), static_cast<size_t>(image->width) * image->height * 3);
        ++num_decoded;
      } else {
        EXPECT_NE(image.status().message().find(name), std::string::npos) << image.status();
        ++num_refused;
      }
    }
  }
  std::printf("corrupted files: %d refused, %d decoded anyway (damage inside pixel data)\n", num_refused,
              num_decoded);
  EXPECT_GT(num_refused, 0);
}

}  // namespace
}  // namespace plm::data
