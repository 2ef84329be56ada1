#include "trainer/line_plot.h"

#include <gtest/gtest.h>

#include <limits>
#include <set>

#include "data/image_decode.h"
#include "data/image_encode.h"

namespace plm::trainer {
namespace {

constexpr Rgb kWhite = {255, 255, 255};
constexpr Rgb kRed = {255, 0, 0};

// Rows of column x (within rows [top, bottom]) that hold the line colour.
std::set<int> line_rows_at(const RgbCanvas& canvas, int x, int top, int bottom) {
  std::set<int> rows;
  for (int y = top; y <= bottom; ++y) {
    if (canvas.at(x, y) == kLineColor) rows.insert(y);
  }
  return rows;
}

TEST(RgbCanvas, LineCoversBothEndsInEveryOctant) {
  for (auto [x1, y1] : {std::pair{9, 2}, {2, 9}, {0, 0}, {-3, 4}, {4, -3}, {-5, -5}, {5, 0}, {0, -5}}) {
    RgbCanvas canvas(21, 21, kWhite);
    canvas.line(10, 10, 10 + x1, 10 + y1, kRed);
    EXPECT_EQ(canvas.at(10, 10), kRed);
    EXPECT_EQ(canvas.at(10 + x1, 10 + y1), kRed);
    int red = 0;
    for (int y = 0; y < 21; ++y) {
      for (int x = 0; x < 21; ++x) red += canvas.at(x, y) == kRed;
    }
    EXPECT_EQ(red, std::max(std::abs(x1), std::abs(y1)) + 1) << x1 << "," << y1;  // one pixel per major step
  }
}

TEST(RgbCanvas, TextDrawsGlyphs) {
  RgbCanvas canvas(20, 10, kWhite);
  canvas.text(1, 1, "1-", kRed);
  // '1' has its stem in column 2 of the glyph on all seven rows.
  for (int row = 0; row < 7; ++row) EXPECT_EQ(canvas.at(1 + 2, 1 + row), kRed) << row;
  // '-' is row 3 only, five pixels wide, starting one pitch (6 px) to the right.
  for (int col = 0; col < 5; ++col) EXPECT_EQ(canvas.at(7 + col, 4), kRed);
  EXPECT_EQ(canvas.at(7, 3), kWhite);
}

TEST(LinePlot, ConstantSeriesIsAHorizontalLineInTheMiddle) {
  const RgbCanvas canvas = plot_panels({{.name = "lr", .x = {1, 2, 3, 4}, .y = {0.5, 0.5, 0.5, 0.5}}});
  const PlotArea area = panel_plot_area(0);
  std::set<int> rows;
  for (int x = area.left; x <= area.right; ++x) {
    const std::set<int> at_x = line_rows_at(canvas, x, area.top, area.bottom);
    ASSERT_EQ(at_x.size(), 1u) << "column " << x;
    rows.insert(*at_x.begin());
  }
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_LE(std::abs(2 * *rows.begin() - (area.top + area.bottom)), 1);
}

TEST(LinePlot, RisingSeriesSpansTheAreaCornerToCorner) {
  const RgbCanvas canvas = plot_panels({{.name = "a", .x = {1, 2}, .y = {0, 0}},
                                        {.name = "loss", .x = {10, 20}, .y = {-1.0, 3.0}}});
  const PlotArea area = panel_plot_area(1);
  EXPECT_EQ(canvas.height(), 2 * kPanelHeight);
  EXPECT_EQ(canvas.at(area.left, area.bottom), kLineColor);
  EXPECT_EQ(canvas.at(area.right, area.top), kLineColor);
  EXPECT_EQ(line_rows_at(canvas, (area.left + area.right) / 2, area.top, area.bottom).size(), 1u);
}

TEST(LinePlot, NonFinitePointsBreakTheLineAndDoNotBendTheAxes) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const RgbCanvas canvas = plot_panels({{.name = "loss", .x = {0, 1, 2, 3, 4}, .y = {0, 1, nan, 3, 4}}});
  const PlotArea area = panel_plot_area(0);
  EXPECT_EQ(canvas.at(area.left, area.bottom), kLineColor);
  EXPECT_EQ(canvas.at(area.right, area.top), kLineColor);
  // No segment between x = 1 and x = 3 (the NaN at x = 2): the middle column is empty.
  EXPECT_TRUE(line_rows_at(canvas, (area.left + area.right) / 2, area.top, area.bottom).empty());
}

TEST(LinePlot, LogScaleMakesPowersOfTenAStraightLineAndBreaksAtZero) {
  const RgbCanvas canvas = plot_panels(
      {{.name = "loss", .x = {0, 1, 2, 3, 4, 5, 6}, .y = {1e4, 1e3, 1e2, 1e1, 1e0, 0.0, 1e-2}, .log_y = true}});
  const PlotArea area = panel_plot_area(0);
  EXPECT_EQ(canvas.at(area.left, area.top), kLineColor);      // 1e4
  EXPECT_EQ(canvas.at(area.right, area.bottom), kLineColor);  // 1e-2
  // 1e2 at x = 2 sits a third of the way down: log10 spans 4 .. -2.
  const int x2 = area.left + (area.right - area.left) / 3;
  const std::set<int> rows = line_rows_at(canvas, x2, area.top, area.bottom);
  ASSERT_FALSE(rows.empty());
  EXPECT_NEAR(*rows.begin(), area.top + (area.bottom - area.top) / 3.0, 2.0);
  // No segment through the 0 at x = 5 (no place on a log axis): the columns between x = 4 and x = 6 are empty.
  const int x45 = area.left + static_cast<int>((area.right - area.left) * 4.5 / 6);
  const int x55 = area.left + static_cast<int>((area.right - area.left) * 5.5 / 6);
  EXPECT_TRUE(line_rows_at(canvas, x45, area.top, area.bottom).empty());
  EXPECT_TRUE(line_rows_at(canvas, x55, area.top, area.bottom).empty());
}

TEST(LinePlot, PngRoundTripsThroughTheProjectDecoder) {
  const RgbCanvas canvas = plot_panels({{.name = "grad_norm", .x = {1, 2, 3}, .y = {3, 1, 2}}});
  const absl::StatusOr<std::string> png = data::encode_png(canvas.image());
  ASSERT_TRUE(png.ok()) << png.status();
  const absl::StatusOr<data::RgbImage> decoded = data::decode_image(*png, "plot.png");
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->width, canvas.width());
  EXPECT_EQ(decoded->height, canvas.height());
  EXPECT_EQ(decoded->pixels, canvas.image().pixels);
}

TEST(LinePlotDeathTest, UnknownGlyph) {
  RgbCanvas canvas(10, 10, kWhite);
  EXPECT_DEATH(canvas.text(0, 0, "A", kRed), "no glyph");
}

}  // namespace
}  // namespace plm::trainer
