// PLM image preprocessing, bit-exact with HF transformers 5.x PerceptionLMImageProcessor on CPU
// (spec/plm_spec.md §3.2-§3.5): "thumb+tile" picks a tile grid, stretches the image onto it and cuts it
// into tiles, after a thumbnail of the whole image; "vanilla" is the thumbnail alone. Each tile is
// normalised to f32 (u8 - mean') / std' with the rescale folded into mean and std, as HF does.
// Stateless and thread-safe.
#pragma once

#include <array>
#include <filesystem>
#include <optional>

#include "absl/status/statusor.h"
#include "core/tensor.h"
#include "data/image_decode.h"
#include "data/rgb_image.h"

namespace plm::data {

enum class VisionInputType { kThumbTile, kVanilla };

// The PLM preprocessor_config.json values (§1.5).
struct ImageProcessorConfig {
  VisionInputType vision_input_type = VisionInputType::kThumbTile;
  int tile_size = 448;
  int max_num_tiles = 36;  // the configured value decides the grid (§3.7 quirk)
  double rescale_factor = 1.0 / 255.0;
  std::array<float, 3> image_mean = {0.5f, 0.5f, 0.5f};
  std::array<float, 3> image_std = {0.5f, 0.5f, 0.5f};
};

// How the image is cut: num_cols tiles across, num_rows down (HF's (n_w, n_h)).
struct TileGrid {
  int num_cols = 1;
  int num_rows = 1;
  int num_tiles() const { return num_cols * num_rows; }
  bool operator==(const TileGrid&) const = default;
};

// HF's grid choice for a width x height image (§3.2 (a)-(c)): the largest upscale among canvases that
// hold the image, else the closest aspect ratio. max_num_tiles <= 1 gives 1x1.
TileGrid choose_tile_grid(int width, int height, int tile_size, int max_num_tiles);

struct ProcessedImage {
  OwnedTensor pixel_values;  // f32 (num_tiles, 3, tile_size, tile_size): thumbnail, then tiles row-major
  TileGrid grid;             // 1x1 in vanilla mode (no tiles after the thumbnail)
};

ProcessedImage process_image(const RgbImage& image, const ImageProcessorConfig& config);

absl::StatusOr<ProcessedImage> load_and_process_image(const std::filesystem::path& path,
                                                      const ImageProcessorConfig& config,
                                                      const ImageDecodeLimits& limits = {});

// Rescale + normalise, shared with the video processor (§3.4): HF folds the rescale into f32 mean' and
// std' and computes (u8 - mean') / std' in f32, so each channel is a table of 256 values.
class PixelNormalizer {
 public:
  PixelNormalizer(double rescale_factor, const std::array<float, 3>& mean, const std::array<float, 3>& std);
  // Writes the (3, height, width) planes of the width x height window at (x0, y0) of `image` to `out`.
  void write_chw(const RgbImage& image, int x0, int y0, int width, int height, float* out) const;

  // The normalised value of u8 `level` in `channel`, and back: the level whose value is exactly `value`.
  // The inverse exists when each channel's 256 values strictly increase (invertible(): std > 0 and small
  // enough that no two levels round to the same f32), which lets stores keep pixels as u8 losslessly.
  float value(int channel, uint8_t level) const { return table_[channel][level]; }
  bool invertible() const;
  std::optional<uint8_t> level_of(int channel, float value) const;  // invertible() only

 private:
  std::array<std::array<float, 256>, 3> table_;  // (channel, u8 level)
  std::array<double, 3> fused_mean_{}, fused_std_{};  // value = (level - mean') / std'; level_of's first guess
};

}  // namespace plm::data
