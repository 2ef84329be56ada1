// Frames -> pixel values: resize each frame (HF resizes the stacked frames; the kernel treats each frame
// alone, so this is the same), then the shared normaliser.
#include "data/video_processor.h"

#include "core/check.h"
#include "core/status_macros.h"
#include "data/image_processor.h"
#include "data/resize.h"

namespace plm::data {

OwnedTensor process_video_frames(const std::vector<RgbImage>& frames, const VideoProcessorConfig& config) {
  PLM_CHECK(config.height > 0 && config.width > 0) << "video size " << config.width << "x" << config.height;
  const int64_t num_frames = static_cast<int64_t>(frames.size());
  OwnedTensor pixel_values(Shape{num_frames, kRgbChannels, config.height, config.width}, DType::kF32);
  const PixelNormalizer normalizer(config.rescale_factor, config.image_mean, config.image_std);
  const size_t frame_floats = static_cast<size_t>(kRgbChannels) * config.height * config.width;
  float* out = pixel_values.data_as<float>();
  // Frames in parallel; the resize's own OpenMP loops then run inside one thread (no nested parallelism).
#pragma omp parallel for schedule(dynamic)
  for (int64_t t = 0; t < num_frames; ++t) {
    const RgbImage resized = resize_bicubic_antialias(frames[t], config.width, config.height);
    normalizer.write_chw(resized, 0, 0, config.width, config.height, out + t * frame_floats);
  }
  return pixel_values;
}

absl::StatusOr<ProcessedVideo> load_and_process_video(const std::filesystem::path& path,
                                                      const FrameSampling& sampling,
                                                      const VideoProcessorConfig& config,
                                                      const VideoDecodeLimits& limits) {
  PLM_ASSIGN_OR_RETURN(DecodedVideo video, decode_video_file(path, sampling, limits));
  return ProcessedVideo{process_video_frames(video.frames, config), std::move(video.frame_indices), video.info};
}

}  // namespace plm::data
