// PLM video preprocessing, bit-exact with HF transformers 5.x PerceptionLMVideoProcessor on CPU
// (spec/plm_spec.md §3.6): every sampled frame is stretched to size with the same uint8 antialiased bicubic
// resize as images and normalised like them; no tiling. Stateless and thread-safe.
#pragma once

#include <array>
#include <filesystem>
#include <vector>

#include "absl/status/statusor.h"
#include "core/tensor.h"
#include "data/rgb_image.h"
#include "data/video.h"

namespace plm::data {

// The PLM video_preprocessor_config.json values (§1.5).
struct VideoProcessorConfig {
  int height = 448;
  int width = 448;
  double rescale_factor = 1.0 / 255.0;
  std::array<float, 3> image_mean = {0.5f, 0.5f, 0.5f};
  std::array<float, 3> image_std = {0.5f, 0.5f, 0.5f};
};

// f32 (num_frames, 3, height, width).
OwnedTensor process_video_frames(const std::vector<RgbImage>& frames, const VideoProcessorConfig& config);

struct ProcessedVideo {
  OwnedTensor pixel_values;            // f32 (num_frames, 3, height, width)
  std::vector<int64_t> frame_indices;  // which frames of the video
  VideoInfo info;
};

absl::StatusOr<ProcessedVideo> load_and_process_video(const std::filesystem::path& path,
                                                      const FrameSampling& sampling,
                                                      const VideoProcessorConfig& config,
                                                      const VideoDecodeLimits& limits = {});

}  // namespace plm::data
