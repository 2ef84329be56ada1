// Preprocessed pixels <-> the u8 levels they were normalised from. Every pixel the image and video
// processors produce is PixelNormalizer's value of a u8 level of the resized image, so a store can keep
// 1 byte per value and rebuild the f32 tensor bit for bit. Stateless and thread-safe.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "core/tensor.h"
#include "data/image_processor.h"

namespace plm::data {

// pixels: f32 (n, 3, h, w) -> u8 (n, 3, h, w) levels. An error when `normalizer` is not invertible or a value
// is none of its 256 values for that channel (the pixels were not made by this normaliser).
absl::StatusOr<std::vector<uint8_t>> pixels_to_levels(const Tensor& pixels, const PixelNormalizer& normalizer);

// levels: u8 (n, 3, h, w) -> pixels: f32 (n, 3, h, w), contiguous on the CPU.
void levels_to_pixels(const uint8_t* levels, const Tensor& pixels, const PixelNormalizer& normalizer);

}  // namespace plm::data
