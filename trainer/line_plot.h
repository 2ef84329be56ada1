// A self-contained line-plot rasterizer for training curves (metrics.png): panels stacked vertically, one
// series each, linear axes fitted to the finite values, the series' name and its min/max (y) and first/last
// (x) printed with a built-in 5x7 pixel font; data::encode_png (data/image_encode.h) makes the PNG.
// Non-finite points (a NaN loss) break the line instead of bending the axes. A log-scale panel shows a loss
// that falls from 12 to 0.01 along its whole height.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/rgb_image.h"

namespace plm::trainer {

struct Rgb {
  uint8_t r = 0, g = 0, b = 0;
  bool operator==(const Rgb&) const = default;
};

// Drawing on a data::RgbImage (rows top to bottom, interleaved RGB).
class RgbCanvas {
 public:
  RgbCanvas(int width, int height, Rgb background);
  int width() const { return image_.width; }
  int height() const { return image_.height; }
  Rgb at(int x, int y) const;
  void set(int x, int y, Rgb color);  // ignores points outside the canvas
  void line(int x0, int y0, int x1, int y1, Rgb color);
  // 5x7 glyphs on a 6-pixel pitch, (x, y) the top left. Digits, ". - + _ :", space and lower-case letters;
  // PLM_CHECKs any other character.
  void text(int x, int y, const std::string& text, Rgb color);
  const data::RgbImage& image() const { return image_; }

 private:
  data::RgbImage image_;
};

struct Series {
  std::string name;       // lower case, shown at the panel's top left
  std::vector<double> x;  // same length as y
  std::vector<double> y;
  bool log_y = false;     // y on a log10 axis ("log scale" after the name); y <= 0 breaks the line like NaN
};

// Where a panel's curve is drawn: pixel columns [left, right], rows [top, bottom] (inclusive).
struct PlotArea {
  int left, top, right, bottom;
};

inline constexpr int kPlotWidth = 800;
inline constexpr int kPanelHeight = 200;
inline constexpr Rgb kLineColor = {31, 119, 180};

PlotArea panel_plot_area(int panel);
// kPlotWidth x (kPanelHeight * panels.size()) pixels.
RgbCanvas plot_panels(const std::vector<Series>& panels);

}  // namespace plm::trainer
