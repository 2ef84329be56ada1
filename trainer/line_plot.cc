#include "trainer/line_plot.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <limits>

#include "absl/strings/str_format.h"
#include "core/check.h"

namespace plm::trainer {
namespace {

constexpr int kGlyphWidth = 5;
constexpr int kGlyphHeight = 7;
constexpr int kGlyphPitch = kGlyphWidth + 1;

struct Glyph {
  char c;
  std::array<uint8_t, kGlyphHeight> rows;  // bit 4 is the leftmost column
};

// clang-format off
constexpr Glyph kFont[] = {
    {' ', {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}}, {'.', {0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C}},
    {'-', {0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00}}, {'+', {0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00}},
    {'_', {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1F}}, {':', {0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00}},
    {'0', {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E}}, {'1', {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E}},
    {'2', {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F}}, {'3', {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E}},
    {'4', {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02}}, {'5', {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E}},
    {'6', {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E}}, {'7', {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08}},
    {'8', {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E}}, {'9', {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C}},
    {'a', {0x00, 0x00, 0x0E, 0x01, 0x0F, 0x11, 0x0F}}, {'b', {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x1E}},
    {'c', {0x00, 0x00, 0x0E, 0x10, 0x10, 0x11, 0x0E}}, {'d', {0x01, 0x01, 0x0D, 0x13, 0x11, 0x11, 0x0F}},
    {'e', {0x00, 0x00, 0x0E, 0x11, 0x1F, 0x10, 0x0E}}, {'f', {0x06, 0x09, 0x08, 0x1C, 0x08, 0x08, 0x08}},
    {'g', {0x00, 0x00, 0x0F, 0x11, 0x0F, 0x01, 0x0E}}, {'h', {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11}},
    {'i', {0x04, 0x00, 0x0C, 0x04, 0x04, 0x04, 0x0E}}, {'j', {0x02, 0x00, 0x06, 0x02, 0x02, 0x12, 0x0C}},
    {'k', {0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12}}, {'l', {0x0C, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E}},
    {'m', {0x00, 0x00, 0x1A, 0x15, 0x15, 0x11, 0x11}}, {'n', {0x00, 0x00, 0x16, 0x19, 0x11, 0x11, 0x11}},
    {'o', {0x00, 0x00, 0x0E, 0x11, 0x11, 0x11, 0x0E}}, {'p', {0x00, 0x00, 0x1E, 0x11, 0x1E, 0x10, 0x10}},
    {'q', {0x00, 0x00, 0x0D, 0x13, 0x0F, 0x01, 0x01}}, {'r', {0x00, 0x00, 0x16, 0x19, 0x10, 0x10, 0x10}},
    {'s', {0x00, 0x00, 0x0E, 0x10, 0x0E, 0x01, 0x1E}}, {'t', {0x08, 0x08, 0x1C, 0x08, 0x08, 0x09, 0x06}},
    {'u', {0x00, 0x00, 0x11, 0x11, 0x11, 0x13, 0x0D}}, {'v', {0x00, 0x00, 0x11, 0x11, 0x11, 0x0A, 0x04}},
    {'w', {0x00, 0x00, 0x11, 0x11, 0x15, 0x15, 0x0A}}, {'x', {0x00, 0x00, 0x11, 0x0A, 0x04, 0x0A, 0x11}},
    {'y', {0x00, 0x00, 0x11, 0x11, 0x0F, 0x01, 0x0E}}, {'z', {0x00, 0x00, 0x1F, 0x02, 0x04, 0x08, 0x1F}},
};
// clang-format on

const Glyph& glyph(char c) {
  for (const Glyph& g : kFont) {
    if (g.c == c) return g;
  }
  PLM_CHECK(false) << "no glyph for '" << c << "'";
  return kFont[0];
}

constexpr Rgb kBackground = {255, 255, 255};
constexpr Rgb kAxisColor = {160, 160, 160};
constexpr Rgb kTextColor = {40, 40, 40};
constexpr int kMarginLeft = 72;
constexpr int kMarginRight = 12;
constexpr int kMarginTop = 20;
constexpr int kMarginBottom = 24;

std::string label(double value) { return absl::StrFormat("%.4g", value); }

struct Range {
  double lo = std::numeric_limits<double>::infinity();
  double hi = -std::numeric_limits<double>::infinity();
  void add(double v) {
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  bool empty() const { return lo > hi; }
  // A span of zero (one point, a constant series) widens so that the value sits in the middle.
  double span() const { return hi > lo ? hi - lo : 0.0; }
};

// Position of `value` in [0, 1] along `range`; 0.5 for a degenerate range.
double fraction(double value, const Range& range) {
  return range.span() > 0 ? (value - range.lo) / range.span() : 0.5;
}

void draw_panel(RgbCanvas& canvas, int panel, const Series& series) {
  PLM_CHECK_EQ(series.x.size(), series.y.size()) << series.name;
  const PlotArea area = panel_plot_area(panel);
  canvas.line(area.left - 1, area.top, area.left - 1, area.bottom + 1, kAxisColor);
  canvas.line(area.left - 1, area.bottom + 1, area.right, area.bottom + 1, kAxisColor);
  canvas.text(area.left, panel * kPanelHeight + 6, series.log_y ? series.name + "  log scale" : series.name,
              kTextColor);

  // Points on the panel's axes: y through log10 on a log-scale panel, where y <= 0 has no place.
  const auto drawn = [&series](size_t i) {
    return std::isfinite(series.x[i]) && std::isfinite(series.y[i]) && (!series.log_y || series.y[i] > 0);
  };
  const auto axis_y = [&series](double y) { return series.log_y ? std::log10(y) : y; };
  Range xs, ys, values;
  for (size_t i = 0; i < series.y.size(); ++i) {
    if (!drawn(i)) continue;
    xs.add(series.x[i]);
    ys.add(axis_y(series.y[i]));
    values.add(series.y[i]);
  }
  if (ys.empty()) return;
  canvas.text(4, area.top, label(values.hi), kTextColor);
  canvas.text(4, area.bottom - kGlyphHeight + 1, label(values.lo), kTextColor);
  canvas.text(area.left, area.bottom + 6, label(xs.lo), kTextColor);
  const std::string last = label(xs.hi);
  canvas.text(area.right + 1 - kGlyphPitch * static_cast<int>(last.size()), area.bottom + 6, last, kTextColor);

  bool have_previous = false;
  int previous_x = 0, previous_y = 0;
  for (size_t i = 0; i < series.y.size(); ++i) {
    if (!drawn(i)) {
      have_previous = false;
      continue;
    }
    const int px = area.left + static_cast<int>(std::lround(fraction(series.x[i], xs) * (area.right - area.left)));
    const int py =
        area.bottom - static_cast<int>(std::lround(fraction(axis_y(series.y[i]), ys) * (area.bottom - area.top)));
    if (have_previous) {
      canvas.line(previous_x, previous_y, px, py, kLineColor);
    } else {
      canvas.set(px, py, kLineColor);
    }
    have_previous = true;
    previous_x = px;
    previous_y = py;
  }
}

}  // namespace

RgbCanvas::RgbCanvas(int width, int height, Rgb background) : image_(width, height) {
  PLM_CHECK(width > 0 && height > 0) << width << "x" << height;
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) set(x, y, background);
  }
}

Rgb RgbCanvas::at(int x, int y) const {
  PLM_CHECK(x >= 0 && x < width() && y >= 0 && y < height()) << "(" << x << ", " << y << ")";
  const uint8_t* p = image_.row(y) + x * data::kRgbChannels;
  return {p[0], p[1], p[2]};
}

void RgbCanvas::set(int x, int y, Rgb color) {
  if (x < 0 || x >= width() || y < 0 || y >= height()) return;
  uint8_t* p = image_.row(y) + x * data::kRgbChannels;
  p[0] = color.r;
  p[1] = color.g;
  p[2] = color.b;
}

void RgbCanvas::line(int x0, int y0, int x1, int y1, Rgb color) {
  // Bresenham, all octants.
  const int dx = std::abs(x1 - x0), sx = x0 < x1 ? 1 : -1;
  const int dy = -std::abs(y1 - y0), sy = y0 < y1 ? 1 : -1;
  int error = dx + dy;
  while (true) {
    set(x0, y0, color);
    if (x0 == x1 && y0 == y1) return;
    const int twice = 2 * error;
    if (twice >= dy) {
      error += dy;
      x0 += sx;
    }
    if (twice <= dx) {
      error += dx;
      y0 += sy;
    }
  }
}

void RgbCanvas::text(int x, int y, const std::string& text, Rgb color) {
  for (const char c : text) {
    const Glyph& g = glyph(c);
    for (int row = 0; row < kGlyphHeight; ++row) {
      for (int col = 0; col < kGlyphWidth; ++col) {
        if (g.rows[row] & (0x10 >> col)) set(x + col, y + row, color);
      }
    }
    x += kGlyphPitch;
  }
}

PlotArea panel_plot_area(int panel) {
  PLM_CHECK_GE(panel, 0);
  const int top = panel * kPanelHeight;
  return {.left = kMarginLeft,
          .top = top + kMarginTop,
          .right = kPlotWidth - 1 - kMarginRight,
          .bottom = top + kPanelHeight - 1 - kMarginBottom};
}

RgbCanvas plot_panels(const std::vector<Series>& panels) {
  PLM_CHECK(!panels.empty());
  RgbCanvas canvas(kPlotWidth, kPanelHeight * static_cast<int>(panels.size()), kBackground);
  for (size_t i = 0; i < panels.size(); ++i) draw_panel(canvas, static_cast<int>(i), panels[i]);
  return canvas;
}

}  // namespace plm::trainer
