// Wall-clock timing with steady_clock; each measurement keeps the fastest of num_runs.
#include "data/preprocess_bench.h"

#include <algorithm>
#include <chrono>
#include <limits>

#include "core/status_macros.h"
#include "data/image_decode.h"

namespace plm::data {
namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

absl::StatusOr<ImageBenchResult> measure_image_preprocessing(const std::filesystem::path& path,
                                                             const ImageProcessorConfig& config, int num_runs) {
  ImageBenchResult result;
  double best_decode = std::numeric_limits<double>::infinity(), best_process = best_decode;
  for (int run = 0; run < num_runs; ++run) {
    auto start = std::chrono::steady_clock::now();
    PLM_ASSIGN_OR_RETURN(const RgbImage image, decode_image_file(path));
    best_decode = std::min(best_decode, seconds_since(start));
    start = std::chrono::steady_clock::now();
    const ProcessedImage processed = process_image(image, config);
    best_process = std::min(best_process, seconds_since(start));
    result.num_tiles = static_cast<int>(processed.pixel_values.size(0));
  }
  result.decode_ms = best_decode * 1e3;
  result.preprocess_ms = best_process * 1e3;
  return result;
}

absl::StatusOr<VideoBenchResult> measure_video_preprocessing(const std::filesystem::path& path,
                                                             const FrameSampling& sampling,
                                                             const VideoProcessorConfig& config, int num_runs) {
  VideoBenchResult result;
  result.seconds = result.decode_seconds = std::numeric_limits<double>::infinity();
  for (int run = 0; run < num_runs; ++run) {
    const auto start = std::chrono::steady_clock::now();
    PLM_ASSIGN_OR_RETURN(const DecodedVideo decoded, decode_video_file(path, sampling));
    const double decode_s = seconds_since(start);
    const OwnedTensor pixels = process_video_frames(decoded.frames, config);
    result.seconds = std::min(result.seconds, seconds_since(start));
    result.decode_seconds = std::min(result.decode_seconds, decode_s);
    result.num_frames = pixels.size(0);
  }
  return result;
}

}  // namespace plm::data
