// The processor settings of an HF PLM directory (spec/plm_spec.md §1.5), from either layout:
// 4.5x hub files (preprocessor_config.json, video_preprocessor_config.json, processor_config.json) or the
// 5.x processor_config.json with nested "image_processor" / "video_processor" objects. Missing files or
// keys keep PLM's defaults (448 tiles, 36 max tiles, mean = std = 0.5).
#pragma once

#include <filesystem>

#include "absl/status/statusor.h"
#include "data/image_processor.h"
#include "data/video_processor.h"

namespace plm::data {

struct ProcessorConfig {
  ImageProcessorConfig image;
  VideoProcessorConfig video;
  int patch_size = 14;
  int pooling_ratio = 2;

  // HF's placeholder count per tile / frame (spec/tokenizer.md §1.5): (H // patch // pool) * (W // patch // pool).
  int image_tokens_per_tile() const;
  int video_tokens_per_frame() const;
};

// Errors name the file and key (malformed JSON, a non-numeric tile_size, an unknown vision_input_type).
absl::StatusOr<ProcessorConfig> load_processor_config(const std::filesystem::path& model_dir);

}  // namespace plm::data
