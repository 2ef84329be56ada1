// RGB frames to an H.264 MP4 file with FFmpeg's own libraries (libx264 through libavcodec, the mp4 muxer of
// libavformat, RGB24 -> YUV 4:2:0 by libswscale): the writer behind the synthetic videos
// (data/synthetic_dataset.h), which data/video.h reads back. Deterministic: one encoder thread, no B-frames,
// so the same frames give the same bytes. Thread-safe (each call owns its FFmpeg contexts).
#pragma once

#include <filesystem>
#include <vector>

#include "absl/status/status.h"
#include "data/rgb_image.h"

namespace plm::data {

struct VideoEncodeOptions {
  int fps = 8;
  int crf = 12;  // libx264 constant rate factor: 0 lossless ... 51 worst; low keeps small shapes' colours
};

// Every frame must have the same even width and height (4:2:0 chroma). Replaces `path`; errors name it.
absl::Status write_mp4_file(const std::filesystem::path& path, const std::vector<RgbImage>& frames,
                            const VideoEncodeOptions& options = {});

}  // namespace plm::data
