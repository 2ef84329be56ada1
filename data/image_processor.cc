// Grid choice, canvas resize, tiling and normalisation of one image, following HF's
// PerceptionLMImageProcessor (transformers/models/perception_lm/image_processing_perception_lm.py).
// Python float semantics are kept: ratios and sizes are doubles, floor() where HF floors, ties broken
// by HF's candidate order.
#include "data/image_processor.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <utility>
#include <vector>

#include "core/check.h"
#include "core/status_macros.h"
#include "data/resize.h"

namespace plm::data {
namespace {

// All grids with ratio n_w / n_h == ratio, in the order HF's dictionary collects them.
struct RatioGroup {
  double ratio;
  std::vector<TileGrid> grids;
};

// §3.2 (a): tile counts from max_num_tiles down to 1, each count's divisors ascending; the ratio keys keep
// their first-insertion order (a Python dict). Equal rationals give equal doubles, as Python's keys do.
std::vector<RatioGroup> supported_aspect_ratios(int max_num_tiles) {
  std::vector<RatioGroup> groups;
  for (int count = max_num_tiles; count >= 1; --count) {
    for (int cols = 1; cols <= count; ++cols) {
      if (count % cols != 0) continue;
      const TileGrid grid{cols, count / cols};
      const double ratio = static_cast<double>(grid.num_cols) / grid.num_rows;
      auto it = std::find_if(groups.begin(), groups.end(), [&](const RatioGroup& g) { return g.ratio == ratio; });
      if (it == groups.end()) groups.push_back({ratio, {grid}});
      else it->grids.push_back(grid);
    }
  }
  return groups;
}

// HF's _get_image_height_width: the aspect-preserving size of the image scaled into the canvas. One side
// stays a float (r * side), the other is floored, as in Python.
std::pair<double, double> size_in_canvas(int width, int height, int canvas_width, int canvas_height) {
  const double scale = static_cast<double>(width) / height;
  const double factor = std::min(static_cast<double>(canvas_width) / width,
                                 static_cast<double>(canvas_height) / height);
  if (scale > 1.0) {
    const double new_width = factor * width;
    return {new_width, std::floor(new_width / scale)};
  }
  const double new_height = factor * height;
  return {std::floor(new_height * scale), new_height};
}

// §3.2 (b): among the canvases that hold the image without downscaling, the one allowing the largest
// upscale of the shorter side; later candidates win ties. Returns false when none holds it.
bool fit_to_canvas(const std::vector<RatioGroup>& groups, int width, int height, int tile_size, TileGrid* best) {
  const double scale = static_cast<double>(width) / height;
  bool found = false;
  std::pair<double, double> best_size;
  for (const RatioGroup& group : groups) {
    for (const TileGrid& grid : group.grids) {
      const int canvas_width = grid.num_cols * tile_size, canvas_height = grid.num_rows * tile_size;
      if (canvas_width < width || canvas_height < height) continue;
      const auto size = size_in_canvas(width, height, canvas_width, canvas_height);
      if (!found || (scale < 1.0 && size.first >= best_size.first) ||
          (scale >= 1.0 && size.second >= best_size.second)) {
        *best = grid;
        best_size = size;
        found = true;
      }
    }
  }
  return found;
}

// §3.2 (c): the ratio key closest to the image's (on the same side of it), then that key's widest
// (landscape) or tallest (portrait) grid; Python's min/max keep the first of equals.
TileGrid closest_aspect_ratio(const std::vector<RatioGroup>& groups, int width, int height) {
  const double target = static_cast<double>(width) / height;
  const RatioGroup* closest = nullptr;
  double closest_distance = 0.0;
  for (const RatioGroup& group : groups) {
    const bool eligible = target >= 1.0 ? group.ratio <= target : group.ratio > target;
    if (!eligible) continue;
    const double distance =
        target >= 1.0 ? std::abs(group.ratio - target) : std::abs(1.0 / group.ratio - 1.0 / target);
    if (closest == nullptr || distance < closest_distance) {
      closest = &group;
      closest_distance = distance;
    }
  }
  PLM_CHECK(closest != nullptr) << "no aspect ratio for " << width << "x" << height;  // ratio 1 always qualifies
  TileGrid best = closest->grids.front();
  for (const TileGrid& grid : closest->grids) {
    if (target >= 1.0 ? grid.num_cols > best.num_cols : grid.num_rows > best.num_rows) best = grid;
  }
  return best;
}

}  // namespace

TileGrid choose_tile_grid(int width, int height, int tile_size, int max_num_tiles) {
  PLM_CHECK(width > 0 && height > 0 && tile_size > 0) << width << "x" << height << " tile " << tile_size;
  if (max_num_tiles <= 1) return TileGrid{1, 1};
  const std::vector<RatioGroup> groups = supported_aspect_ratios(max_num_tiles);
  TileGrid grid;
  if (fit_to_canvas(groups, width, height, tile_size, &grid)) return grid;
  return closest_aspect_ratio(groups, width, height);
}

PixelNormalizer::PixelNormalizer(double rescale_factor, const std::array<float, 3>& mean,
                                 const std::array<float, 3>& std) {
  // HF: torch.tensor(mean) * (1.0 / rescale_factor), an f32 product; then tvF.normalize: (x - m) / s in f32.
  const float inverse_rescale = static_cast<float>(1.0 / rescale_factor);
  for (int c = 0; c < kRgbChannels; ++c) {
    const float fused_mean = mean[c] * inverse_rescale;
    const float fused_std = std[c] * inverse_rescale;
    fused_mean_[c] = fused_mean;
    fused_std_[c] = fused_std;
    for (int level = 0; level < 256; ++level) {
      table_[c][level] = (static_cast<float>(level) - fused_mean) / fused_std;
    }
  }
}

void PixelNormalizer::write_chw(const RgbImage& image, int x0, int y0, int width, int height, float* out) const {
  PLM_CHECK(x0 >= 0 && y0 >= 0 && x0 + width <= image.width && y0 + height <= image.height)
      << "window " << width << "x" << height << " at (" << x0 << ", " << y0 << ") of a " << image.width << "x"
      << image.height << " image";
  const size_t plane = static_cast<size_t>(width) * height;
  for (int y = 0; y < height; ++y) {
    const uint8_t* in = image.row(y0 + y) + x0 * kRgbChannels;
    for (int c = 0; c < kRgbChannels; ++c) {
      float* dst = out + c * plane + static_cast<size_t>(y) * width;
      for (int x = 0; x < width; ++x) dst[x] = table_[c][in[x * kRgbChannels + c]];
    }
  }
}

bool PixelNormalizer::invertible() const {
  for (const auto& values : table_) {
    // Strictly increasing: no neighbour is >= the next.
    if (std::adjacent_find(values.begin(), values.end(), std::greater_equal<float>()) != values.end()) return false;
  }
  return true;
}

std::optional<uint8_t> PixelNormalizer::level_of(int channel, float value) const {
  const std::array<float, 256>& values = table_[channel];
  // The affine inverse lands on the level or next to it; the table has the last word.
  const double guess = std::nearbyint(value * fused_std_[channel] + fused_mean_[channel]);
  if (guess >= 0.0 && guess <= 255.0) {
    const int level = static_cast<int>(guess);
    for (const int candidate : {level, level - 1, level + 1}) {
      if (candidate >= 0 && candidate <= 255 && values[candidate] == value) return static_cast<uint8_t>(candidate);
    }
  }
  const auto it = std::lower_bound(values.begin(), values.end(), value);
  if (it == values.end() || *it != value) return std::nullopt;
  return static_cast<uint8_t>(it - values.begin());
}

ProcessedImage process_image(const RgbImage& image, const ImageProcessorConfig& config) {
  PLM_CHECK(image.width > 0 && image.height > 0) << "empty image";
  const int tile = config.tile_size;
  const bool tiled = config.vision_input_type == VisionInputType::kThumbTile;
  const TileGrid grid =
      tiled ? choose_tile_grid(image.width, image.height, tile, config.max_num_tiles) : TileGrid{1, 1};
  const int num_tiles = 1 + (tiled ? grid.num_tiles() : 0);

  const RgbImage thumbnail = resize_bicubic_antialias(image, tile, tile);  // §3.2 (f): the whole image
  // §3.2 (d): the whole image stretched onto the canvas, no padding.
  const RgbImage canvas =
      tiled ? resize_bicubic_antialias(image, grid.num_cols * tile, grid.num_rows * tile) : RgbImage();

  ProcessedImage result{OwnedTensor(Shape{num_tiles, kRgbChannels, tile, tile}, DType::kF32), grid};
  const PixelNormalizer normalizer(config.rescale_factor, config.image_mean, config.image_std);
  float* out = result.pixel_values.data_as<float>();
  const size_t tile_floats = static_cast<size_t>(kRgbChannels) * tile * tile;
#pragma omp parallel for schedule(static)
  for (int t = 0; t < num_tiles; ++t) {
    float* dst = out + t * tile_floats;
    if (t == 0) {
      normalizer.write_chw(thumbnail, 0, 0, tile, tile, dst);
    } else {
      const int row = (t - 1) / grid.num_cols, col = (t - 1) % grid.num_cols;  // §3.2 (e): row-major
      normalizer.write_chw(canvas, col * tile, row * tile, tile, tile, dst);
    }
  }
  return result;
}

absl::StatusOr<ProcessedImage> load_and_process_image(const std::filesystem::path& path,
                                                      const ImageProcessorConfig& config,
                                                      const ImageDecodeLimits& limits) {
  PLM_ASSIGN_OR_RETURN(const RgbImage image, decode_image_file(path, limits));
  return process_image(image, config);
}

}  // namespace plm::data
