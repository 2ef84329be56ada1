// RgbImage: an 8-bit RGB picture in memory, the currency between the decoders, the resize and the
// processors of data/. Rows top to bottom, pixels interleaved (HWC), no padding between rows.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace plm::data {

inline constexpr int kRgbChannels = 3;

struct RgbImage {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> pixels;  // (height, width, 3)

  RgbImage() = default;
  RgbImage(int width_, int height_)
      : width(width_), height(height_), pixels(static_cast<size_t>(width_) * height_ * kRgbChannels) {}

  uint8_t* row(int y) { return pixels.data() + static_cast<size_t>(y) * width * kRgbChannels; }
  const uint8_t* row(int y) const { return pixels.data() + static_cast<size_t>(y) * width * kRgbChannels; }
};

}  // namespace plm::data
