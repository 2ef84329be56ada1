// The processor settings of an HF PLM directory (spec/plm_spec.md §1.5), from either layout:
// 4.5x hub files (preprocessor_config.json, video_preprocessor_config.json, processor_config.json) or the
// 5.x processor_config.json with nested "image_processor" / "video_processor" objects. Missing files or
// keys keep PLM's defaults (448 tiles, 36 max tiles, mean = std = 0.5).
#pragma once

#include <cstdint>
#include <filesystem>

#include "absl/status/statusor.h"
#include "data/image_processor.h"
#include "data/video_processor.h"

namespace plm::data {

// What a processor config may ask for, checked when it is read, so a file cannot size an allocation without a
// bound: a side (tile_size, video height / width, patch_size, pooling_ratio) of at most kMaxProcessorSide pixels,
// at most kMaxNumTiles tiles, and an image's thumbnail + tiles of at most kMaxImagePixels pixels (PLM's 448-pixel
// tiles x (36 + 1) are 7.4M; the limit's f32 pixel values are 1.5 GiB).
inline constexpr int kMaxProcessorSide = 8192;
inline constexpr int kMaxNumTiles = 1024;
inline constexpr int64_t kMaxImagePixels = int64_t{1} << 27;

struct ProcessorConfig {
  ImageProcessorConfig image;
  VideoProcessorConfig video;
  int patch_size = 14;
  int pooling_ratio = 2;

  // HF's placeholder count per tile / frame (spec/tokenizer.md §1.5): (H // patch // pool) * (W // patch // pool).
  int image_tokens_per_tile() const;
  int video_tokens_per_frame() const;
};

// Errors name the file and key (malformed JSON, a non-integer or out-of-range tile_size, an unknown
// vision_input_type, a zero image_std).
absl::StatusOr<ProcessorConfig> load_processor_config(const std::filesystem::path& model_dir);

}  // namespace plm::data
