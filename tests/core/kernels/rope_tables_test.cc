// RoPE tables against double-precision recomputations of spec/plm_spec.md §2.3 and §2.7.
#include "core/kernels/rope_tables.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <string>

namespace plm {
namespace {

constexpr Llama3RopeScaling kLlama32{32.0, 1.0, 4.0, 8192};

// How many representable floats lie between `actual` and the correctly rounded `exact` (0: equal, 1: adjacent).
int64_t ulps(float actual, double exact) {
  const float rounded = static_cast<float>(exact);
  int64_t steps = 0;
  for (float f = std::min(actual, rounded); f < std::max(actual, rounded) && steps < 1000; ++steps) {
    f = std::nextafter(f, INFINITY);
  }
  return steps;
}

double plain_inv_freq(int i, int head_dim, double theta) { return 1.0 / std::pow(theta, 2.0 * i / head_dim); }

TEST(RopeTables, PlainInvFreqWithinOneUlpOfDouble) {
  for (int head_dim : {8, 64, 128}) {
    const std::vector<float> f = rope_inv_freq(head_dim, 500000.0, std::nullopt);
    ASSERT_EQ(f.size(), static_cast<size_t>(head_dim / 2));
    int64_t worst = 0;
    for (int i = 0; i < head_dim / 2; ++i) worst = std::max(worst, ulps(f[i], plain_inv_freq(i, head_dim, 500000.0)));
    EXPECT_LE(worst, 1) << "head_dim " << head_dim;
    EXPECT_EQ(f[0], 1.0f);
  }
}

TEST(RopeTables, Llama3CategoriesMatchSpecForHeadDim64) {
  const std::vector<float> plain = rope_inv_freq(64, 500000.0, std::nullopt);
  const std::vector<float> scaled = rope_inv_freq(64, 500000.0, kLlama32);
  ASSERT_EQ(scaled.size(), 32u);
  int64_t worst_blend_ulps = 0;
  for (int i = 0; i < 32; ++i) {
    // Category and value from the double recomputation.
    const double f = plain_inv_freq(i, 64, 500000.0);
    const double wavelen = 2.0 * std::numbers::pi / f;
    if (i <= 14) {
      EXPECT_LT(wavelen, 2048.0) << i;
      EXPECT_EQ(scaled[i], plain[i]) << "kept, i = " << i;
      EXPECT_LE(ulps(scaled[i], f), 1) << i;
    } else if (i <= 17) {
      EXPECT_TRUE(wavelen >= 2048.0 && wavelen <= 8192.0) << i;
      const double alpha = (8192.0 / wavelen - 1.0) / 3.0;
      const double blend = (1.0 - alpha) * f / 32.0 + alpha * f;
      EXPECT_NE(scaled[i], plain[i]) << i;
      worst_blend_ulps = std::max(worst_blend_ulps, ulps(scaled[i], blend));
    } else {
      EXPECT_GT(wavelen, 8192.0) << i;
      EXPECT_EQ(scaled[i], plain[i] / 32.0f) << "divided, i = " << i;
      EXPECT_LE(ulps(scaled[i], f / 32.0), 1) << i;
    }
  }
  // The blend goes through α = (C/λ - lo)/(hi - lo) in fp32 (as HF does), whose cancellation for α near 0
  // costs a few ulps against exact arithmetic.
  EXPECT_LE(worst_blend_ulps, 8);
  RecordProperty("worst_blend_ulps", std::to_string(worst_blend_ulps));
}

TEST(RopeTables, Llama3BlendAlphasAreTheSpecOnes) {
  // α ≈ 0.593, 0.281, 0.075 for i = 15, 16, 17 (spec §2.7): recover α from the blended value.
  const std::vector<float> plain = rope_inv_freq(64, 500000.0, std::nullopt);
  const std::vector<float> scaled = rope_inv_freq(64, 500000.0, kLlama32);
  const double expected_alpha[] = {0.593, 0.281, 0.075};
  for (int i = 15; i <= 17; ++i) {
    const double ratio = static_cast<double>(scaled[i]) / plain[i];  // (1 - α)/32 + α
    EXPECT_NEAR((ratio - 1.0 / 32) / (1.0 - 1.0 / 32), expected_alpha[i - 15], 1e-3) << i;
  }
}

TEST(RopeTables, VisionTableGrid4Offset1SpotValues) {
  // head_dim 16: nb = 4 bands 1 / 10000^(j/4) = 1, 0.1, 0.01, 0.001; coordinate = index + 1.
  const VisionRopeTable t = vision_rope_table(4, 16, 10000.0, 1.0f, 4);
  ASSERT_EQ(t.num_patches, 16);
  ASSERT_EQ(t.half_dim, 8);
  ASSERT_EQ(t.cos.size(), 16u * 8);
  ASSERT_EQ(t.sin.size(), 16u * 8);
  struct Spot {
    int r, c, pair;
    double angle;
  };
  // Pairs 0..3 use the column (x) angle, pairs 4..7 the row (y) angle.
  const Spot spots[] = {{0, 0, 0, 1.0 * 1.0},   {1, 2, 1, 3.0 * 0.1}, {1, 2, 6, 2.0 * 0.01}, {3, 1, 4, 4.0 * 1.0},
                        {3, 1, 3, 2.0 * 0.001}, {2, 3, 5, 3.0 * 0.1}, {2, 3, 0, 4.0 * 1.0},  {3, 3, 7, 4.0 * 0.001}};
  for (const Spot& s : spots) {
    const size_t index = static_cast<size_t>(s.r * 4 + s.c) * 8 + s.pair;
    EXPECT_NEAR(t.cos[index], std::cos(s.angle), 2.5e-7) << "r " << s.r << " c " << s.c << " pair " << s.pair;
    EXPECT_NEAR(t.sin[index], std::sin(s.angle), 2.5e-7) << "r " << s.r << " c " << s.c << " pair " << s.pair;
  }
}

TEST(RopeTables, VisionTableScalesToTheReferenceGrid) {
  // ref_grid 8 on a 4-grid doubles every coordinate: t = (i + 0) / 4 * 8.
  const VisionRopeTable t = vision_rope_table(4, 8, 10000.0, 0.0f, 8);
  for (int r = 0; r < 4; ++r) {
    for (int c = 0; c < 4; ++c) {
      const size_t row = static_cast<size_t>(r * 4 + c) * 4;
      EXPECT_NEAR(t.cos[row + 0], std::cos(2.0 * c), 2.5e-7);         // x, band 1
      EXPECT_NEAR(t.cos[row + 2], std::cos(2.0 * r), 2.5e-7);         // y, band 1
      EXPECT_NEAR(t.sin[row + 3], std::sin(2.0 * r * 0.01), 2.5e-7);  // y, band 0.01
    }
  }
}

}  // namespace
}  // namespace plm
