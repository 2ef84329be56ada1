#include "bench/data_bench.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "data/preprocess_bench.h"
#include "data/processor_config.h"
#include "data/sft_dataset.h"
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
    std::printf("video %s: %lld frames to %dx%d, best of %d: %.3f s = %.0f frames/s (decode + sample + resize); "
                "decode alone %.3f s\n",
                o.video.c_str(), static_cast<long long>(r->num_frames), o.tile_size, o.tile_size, o.runs, r->seconds,
                r->frames_per_second(), r->decode_seconds);
  }
  if (o.image.empty() && o.video.empty()) {
    std::fprintf(stderr, "plm bench preprocess: give --image and/or --video\n");
    return 2;
  }
  return 0;
}

int run_sft_data_bench(const SftDataBenchOptions& o) {
  const auto fail = [](const absl::Status& status) {
    std::fprintf(stderr, "plm bench sft-data: %s\n", std::string(status.message()).c_str());
    return 1;
  };
  absl::StatusOr<data::Tokenizer> tokenizer = data::load_tokenizer(o.model_dir);
  if (!tokenizer.ok()) return fail(tokenizer.status());
  absl::StatusOr<data::ProcessorConfig> processor = data::load_processor_config(o.model_dir);
  if (!processor.ok()) return fail(processor.status());
  data::SftDataConfig config;
  if (o.num_frames > 0) config.media.video_sampling = {.num_frames = o.num_frames};
  absl::StatusOr<std::unique_ptr<data::SftDataset>> dataset = data::open_sft_dataset(o.data, *tokenizer, *processor, config);
  if (!dataset.ok()) return fail(dataset.status());

  // Each thread takes the next index until every sample was read once.
  std::atomic<int64_t> next{0}, tokens{0}, tiles{0}, pixel_bytes{0};
  std::vector<absl::Status> errors(static_cast<size_t>(o.threads));
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> workers;
  for (int t = 0; t < o.threads; ++t) {
    workers.emplace_back([&, t] {
      for (int64_t i = next++; i < (*dataset)->size(); i = next++) {
        absl::StatusOr<data::SftSample> sample = (*dataset)->sample(i);
        if (!sample.ok()) {
          errors[t] = sample.status();
          return;
        }
        tokens += static_cast<int64_t>(sample->ids.size());
        tiles += sample->num_vision_tiles();
        for (const OwnedTensor* pixels : {&sample->image_pixels, &sample->video_pixels}) {
          if (pixels->view().defined()) pixel_bytes += static_cast<int64_t>(pixels->view().nbytes());
        }
      }
    });
  }
  for (std::thread& w : workers) w.join();
  for (const absl::Status& error : errors) {
    if (!error.ok()) return fail(error);
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const int64_t samples = (*dataset)->size();
  std::printf("%s: %lld samples (%lld tokens, %lld tiles/frames) on %d thread(s) in %.2f s: %.1f samples/s, "
              "%.0f tiles/s, %.0f MB/s of f32 pixels\n",
              o.data.c_str(), static_cast<long long>(samples), static_cast<long long>(tokens.load()),
              static_cast<long long>(tiles.load()), o.threads, seconds, samples / seconds, tiles.load() / seconds,
              pixel_bytes.load() / seconds / 1e6);
  return 0;
}

}  // namespace plm::bench
