// Fuzzes video probing and decoding as a request's or dataset's video file: the bytes are written to a scratch
// file and read by decode_video_file (FFmpeg demuxing, "exact" frame counting, sampling, seeking, RGB
// conversion), then preprocessed with the tiny test model's video processor. The first byte picks the sampling:
// '0' up to 4 frames (the --num-frames path), '1' 1 frame per second (the --fps path), '2' every frame. Limits are
// the defaults but for a 10 s deadline, which a stalled demuxer should hit rather than the fuzzer's own timeout.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/check.h"
#include "data/processor_config.h"
#include "data/video.h"
#include "data/video_processor.h"
#include "fuzz/fuzz_scratch.h"

namespace {

const plm::data::VideoProcessorConfig& tiny_config() {
  static const plm::data::VideoProcessorConfig config = [] {
    auto processor = plm::data::load_processor_config(plm::fuzz::source_path("tests/fixtures/models/cls_tied"));
    PLM_CHECK(processor.ok()) << processor.status();
    return processor->video;
  }();
  return config;
}

plm::data::FrameSampling sampling_of(uint8_t selector) {
  switch (selector % 3) {
    case 0: return {.num_frames = 4, .at_most = true};
    case 1: return {.fps = 1.0};
  }
  return {};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::filesystem::path path = plm::fuzz::scratch_dir("video") / "input.mp4";
  if (size == 0) return 0;
  plm::fuzz::write_file(path, std::string_view(reinterpret_cast<const char*>(data) + 1, size - 1));
  const auto video = plm::data::decode_video_file(path, sampling_of(data[0]), {.timeout_ms = 10'000});
  if (!video.ok()) return 0;
  PLM_CHECK(video->frames.size() == video->frame_indices.size())
      << video->frames.size() << " frames for " << video->frame_indices.size() << " indices";
  for (const int64_t index : video->frame_indices) {
    PLM_CHECK(index >= 0 && index < video->info.num_frames) << "frame " << index << " of " << video->info.num_frames;
  }
  if (!video->frames.empty()) (void)plm::data::process_video_frames(video->frames, tiny_config());
  return 0;
}
