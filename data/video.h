// Video files (mp4, webm, mkv, avi, anything FFmpeg demuxes) to sampled RGB frames, as HF transformers 5.x
// reads a video path (spec/plm_spec.md §3.6): torchcodec's VideoDecoder in "exact" mode counts the frames by
// scanning every packet, HF samples indices from that count, and each chosen frame is decoded (seeking to
// its key frame when that is ahead) and turned into RGB24 by libswscale with torchcodec's settings.
// Every failure is a Status naming the file; limits are checked before frames are decoded, and a deadline
// interrupts a stalled demuxer. Stateless and thread-safe (each call opens its own FFmpeg contexts).
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "data/rgb_image.h"

namespace plm::data {

// HF's default_sample_indices_fn (transformers/video_utils.py). At most one of the two may be set.
struct FrameSampling {
  std::optional<int64_t> num_frames = std::nullopt;  // frames k * N / n, k < n, integer arithmetic; n > N: error
  std::optional<double> fps = std::nullopt;          // n = max(1, int(N / average_fps * fps)), then as above
  // plm's default, not HF's: num_frames is an upper bound, n = min(num_frames, N), so short videos work.
  bool at_most = false;
};                                                   // neither: every frame

struct VideoDecodeLimits {
  double max_duration_s = 4 * 3600.0;        // later frames are not part of the video (info.truncated)
  bool refuse_longer = false;                // instead, a longer video is an error (OutOfRange)
  int64_t max_output_frames = 1024;          // more sampled frames than this is refused
  int64_t max_pixels_per_frame = 7680 * 4320;
  int64_t timeout_ms = 300'000;              // for the whole call; 0: none
};

struct VideoInfo {
  int64_t num_frames = 0;    // N: packets of the video stream (within the duration limit)
  double average_fps = 0;    // N / (end - begin) of the packets' presentation times, as torchcodec
  double duration_s = 0;
  int width = 0;
  int height = 0;
  bool truncated = false;    // the duration limit cut the video
};

struct DecodedVideo {
  VideoInfo info;
  std::vector<int64_t> frame_indices;  // into the N frames in presentation order
  std::vector<RgbImage> frames;        // one per index
};

absl::StatusOr<std::vector<int64_t>> sample_frame_indices(int64_t num_frames, double average_fps,
                                                          const FrameSampling& sampling);

absl::StatusOr<DecodedVideo> decode_video_file(const std::filesystem::path& path, const FrameSampling& sampling,
                                               const VideoDecodeLimits& limits = {});

}  // namespace plm::data
