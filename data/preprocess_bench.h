// Preprocessing speed for `plm bench` and the tests: thumb+tile of one image file (decode included) and
// decode + preprocessing of sampled video frames, best of a few runs. tools/reference/bench_preprocessing.py
// times HF's processors on the same files for comparison.
#pragma once

#include <cstdint>
#include <filesystem>

#include "absl/status/statusor.h"
#include "data/image_processor.h"
#include "data/video_processor.h"

namespace plm::data {

struct ImageBenchResult {
  int num_tiles = 0;         // per image, thumbnail included
  double decode_ms = 0;      // fastest run
  double preprocess_ms = 0;  // fastest run of process_image (resize, tiling, normalisation)
  double total_ms() const { return decode_ms + preprocess_ms; }
};

struct VideoBenchResult {
  int64_t num_frames = 0;  // sampled per run
  double seconds = 0;      // fastest run of decode + preprocessing (load_and_process_video's two halves)
  double decode_seconds = 0;  // fastest decode_video_file alone (demux, decode, sample, RGB)
  double frames_per_second() const { return seconds > 0 ? num_frames / seconds : 0; }
};

absl::StatusOr<ImageBenchResult> measure_image_preprocessing(const std::filesystem::path& path,
                                                             const ImageProcessorConfig& config, int num_runs);

absl::StatusOr<VideoBenchResult> measure_video_preprocessing(const std::filesystem::path& path,
                                                             const FrameSampling& sampling,
                                                             const VideoProcessorConfig& config, int num_runs);

}  // namespace plm::data
