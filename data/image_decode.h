// Image files (JPEG, PNG) to 8-bit RGB exactly as HF transformers 5.x decodes an image given by path:
// torchcodec's decode_image(mode=RGB), or torchvision's, which agree, with the EXIF orientation applied
// (spec/plm_spec.md §3.1). Grey is replicated; alpha (or a tRNS key) is dropped without compositing, as
// Pillow's convert("RGB") does; palettes are expanded; 16-bit PNG is scaled to 8 bits; CMYK/YCCK JPEG uses
// torchcodec's integer formula (also Pillow's). Every failure is a Status naming the file; sizes are
// checked against ImageDecodeLimits before any pixel buffer is allocated. Stateless and thread-safe.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "data/rgb_image.h"

namespace plm::data {

struct ImageDecodeLimits {
  int64_t max_pixels = 178'956'970;  // width * height; Pillow's DecompressionBombError threshold
};

// `name` only labels error messages (a path, a URL, a dataset key).
absl::StatusOr<RgbImage> decode_image(std::string_view bytes, const std::string& name,
                                      const ImageDecodeLimits& limits = {});

absl::StatusOr<RgbImage> decode_image_file(const std::filesystem::path& path, const ImageDecodeLimits& limits = {});

// EXIF orientation codes 1..8 (JEITA CP-3451C 4.6.4.A); 0 = none. Exposed for tests.
int exif_orientation_of_tiff(const uint8_t* tiff, size_t size);
RgbImage apply_exif_orientation(RgbImage image, int orientation);

}  // namespace plm::data
