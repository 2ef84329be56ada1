#include "bench/data_bench.h"

#include <cstdio>
#include <fstream>
#include <sstream>

#include "data/preprocess_bench.h"
#include "data/tokenizer_bench.h"
#include "data/tokenizer_loader.h"

namespace plm::bench {

int run_tokenizer_bench(const TokenizerBenchOptions& o) {
  absl::StatusOr<data::Tokenizer> tokenizer = data::load_tokenizer(o.tokenizer);
  if (!tokenizer.ok()) {
    std::fprintf(stderr, "plm bench tokenizer: %s\n", std::string(tokenizer.status().message()).c_str());
    return 1;
  }
  std::ifstream in(o.text_file, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "plm bench tokenizer: %s: cannot open\n", o.text_file.c_str());
    return 1;
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string unit = buffer.str();
  if (unit.empty()) {
    std::fprintf(stderr, "plm bench tokenizer: %s is empty\n", o.text_file.c_str());
    return 1;
  }
  std::string text;
  while (text.size() < static_cast<size_t>(o.repeat_mb) << 20) text += unit;
  const data::EncodeThroughput r = data::measure_encode_throughput(*tokenizer, text, o.runs);
  std::printf("tokenizer encode, one thread: %lld bytes -> %lld tokens, best of %d: %.1f MB/s (%.1f MB/s of CPU time)\n",
              static_cast<long long>(r.num_bytes), static_cast<long long>(r.num_tokens), o.runs,
              r.megabytes_per_second(), r.megabytes_per_cpu_second());
  return 0;
}

int run_preprocess_bench(const PreprocessBenchOptions& o) {
  if (!o.image.empty()) {
    data::ImageProcessorConfig config;
    config.tile_size = o.tile_size;
    config.max_num_tiles = o.max_num_tiles;
    absl::StatusOr<data::ImageBenchResult> r = data::measure_image_preprocessing(o.image, config, o.runs);
    if (!r.ok()) {
      std::fprintf(stderr, "plm bench preprocess: %s\n", std::string(r.status().message()).c_str());
      return 1;
    }
    std::printf("image %s: %d tiles of %d (thumbnail included), best of %d: decode %.1f ms + thumb+tile %.1f ms = %.1f ms/image\n",
                o.image.c_str(), r->num_tiles, o.tile_size, o.runs, r->decode_ms, r->preprocess_ms, r->total_ms());
  }
  if (!o.video.empty()) {
    data::VideoProcessorConfig config;
    config.height = config.width = o.tile_size;
    absl::StatusOr<data::VideoBenchResult> r = data::measure_video_preprocessing(
        o.video, {.num_frames = o.num_frames, .at_most = true}, config, o.runs);
    if (!r.ok()) {
      std::fprintf(stderr, "plm bench preprocess: %s\n", std::string(r.status().message()).c_str());
      return 1;
    }
    std::printf("video %s: %lld frames to %dx%d, best of %d: %.3f s = %.0f frames/s (decode + sample + resize)\n",
                o.video.c_str(), static_cast<long long>(r->num_frames), o.tile_size, o.tile_size, o.runs, r->seconds,
                r->frames_per_second());
  }
  if (o.image.empty() && o.video.empty()) {
    std::fprintf(stderr, "plm bench preprocess: give --image and/or --video\n");
    return 2;
  }
  return 0;
}

}  // namespace plm::bench
