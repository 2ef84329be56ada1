// The uint8 antialiased bicubic resize against torchvision v2 resize outputs (fixtures), and its axis
// filters' invariants.
#include "data/resize.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <numeric>

#include "tests/data/preprocessing_fixtures.h"

namespace plm::data {
namespace {

using ::plm::testing::expected_u8;
using ::plm::testing::preprocessing_manifest;
using ::plm::testing::rgb_from_array;

TEST(ResizeTest, MatchesTorchvisionExactly) {
  int num_cases = 0;
  for (const auto& c : preprocessing_manifest()["resize"]) {
    const std::string name = c["name"];
    SCOPED_TRACE(name);
    const testing::U8Array* input = expected_u8("resize/" + name + "/input");
    const testing::U8Array* output = expected_u8("resize/" + name + "/output");
    ASSERT_TRUE(input && output);
    const RgbImage resized = resize_bicubic_antialias(rgb_from_array(*input), c["out_width"], c["out_height"]);
    ASSERT_EQ(resized.width, c["out_width"].get<int>());
    ASSERT_EQ(resized.height, c["out_height"].get<int>());
    int max_diff = 0;
    for (size_t i = 0; i < resized.pixels.size(); ++i) {
      max_diff = std::max(max_diff, std::abs(int{resized.pixels[i]} - int{output->data[i]}));
    }
    EXPECT_EQ(max_diff, 0);
    ++num_cases;
  }
  EXPECT_GE(num_cases, 8);
}

TEST(ResizeTest, SameSizeIsACopy) {
  RgbImage image(4, 3);
  std::iota(image.pixels.begin(), image.pixels.end(), 0);
  EXPECT_EQ(resize_bicubic_antialias(image, 4, 3).pixels, image.pixels);
}

TEST(ResizeTest, AxisFilterInvariants) {
  for (auto [in, out] : {std::pair{448, 448 * 7}, {1800, 448}, {5, 448}, {1000, 3}, {900, 6720}, {2, 1}}) {
    SCOPED_TRACE(std::to_string(in) + " -> " + std::to_string(out));
    const ResampleAxis axis = make_resample_axis(in, out);
    ASSERT_EQ(axis.first.size(), static_cast<size_t>(out));
    EXPECT_GE(axis.precision, 14);  // a largest weight <= 1 leaves at least 14 bits
    EXPECT_LE(axis.precision, 22);
    for (int i = 0; i < out; ++i) {
      ASSERT_GE(axis.first[i], 0);
      ASSERT_LE(axis.first[i] + axis.count[i], in);
      ASSERT_GT(axis.count[i], 0);
      ASSERT_LE(axis.count[i], axis.max_taps);
      // Normalised weights, rounded one by one: the sum stays within half an LSB per tap of 1.0.
      int64_t sum = 0;
      for (int j = 0; j < axis.count[i]; ++j) sum += axis.weights[static_cast<size_t>(i) * axis.max_taps + j];
      EXPECT_LE(std::abs(sum - (int64_t{1} << axis.precision)), axis.count[i]);
    }
  }
}

}  // namespace
}  // namespace plm::data
