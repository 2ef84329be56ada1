// RgbImage to PNG bytes (8-bit RGB, no interlace) with libpng: the one encoder behind the training plots
// (trainer/line_plot.h) and the synthetic data generator (data/synthetic_dataset.h). Thread-safe.
#pragma once

#include <filesystem>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "data/rgb_image.h"

namespace plm::data {

absl::StatusOr<std::string> encode_png(const RgbImage& image);

// encode_png written to `path` (replaced); errors name the path.
absl::Status write_png_file(const std::filesystem::path& path, const RgbImage& image);

}  // namespace plm::data
