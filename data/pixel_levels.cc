#include "data/pixel_levels.h"

#include "absl/strings/str_cat.h"
#include "core/check.h"

namespace plm::data {

absl::StatusOr<std::vector<uint8_t>> pixels_to_levels(const Tensor& pixels, const PixelNormalizer& normalizer) {
  PLM_CHECK(pixels.dtype() == DType::kF32 && pixels.rank() == 4 && pixels.size(1) == kRgbChannels &&
            pixels.is_contiguous() && !pixels.is_cuda())
      << pixels.describe();
  if (!normalizer.invertible()) {
    return absl::FailedPreconditionError(
        "the processor's normalisation maps two u8 levels to the same value, so pixels cannot be stored as u8");
  }
  const int64_t plane = pixels.size(2) * pixels.size(3);
  const float* in = pixels.data_as<float>();
  std::vector<uint8_t> levels(static_cast<size_t>(pixels.numel()));
  for (int64_t p = 0; p < pixels.size(0) * kRgbChannels; ++p) {
    const int channel = static_cast<int>(p % kRgbChannels);
    for (int64_t i = p * plane; i < (p + 1) * plane; ++i) {
      const std::optional<uint8_t> level = normalizer.level_of(channel, in[i]);
      if (!level) {
        return absl::InvalidArgumentError(absl::StrCat("pixel value ", in[i], " at flat index ", i, " (channel ",
                                                       channel, ") is not a normalised u8 level of this processor"));
      }
      levels[i] = *level;
    }
  }
  return levels;
}

void levels_to_pixels(const uint8_t* levels, const Tensor& pixels, const PixelNormalizer& normalizer) {
  PLM_CHECK(pixels.dtype() == DType::kF32 && pixels.rank() == 4 && pixels.size(1) == kRgbChannels &&
            pixels.is_contiguous() && !pixels.is_cuda())
      << pixels.describe();
  const int64_t plane = pixels.size(2) * pixels.size(3);
  float* out = pixels.data_as<float>();
  for (int64_t p = 0; p < pixels.size(0) * kRgbChannels; ++p) {
    const int channel = static_cast<int>(p % kRgbChannels);
    for (int64_t i = p * plane; i < (p + 1) * plane; ++i) out[i] = normalizer.value(channel, levels[i]);
  }
}

}  // namespace plm::data
