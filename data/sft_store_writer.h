// `plm data pack`: an SFT JSONL file -> a sample store (.h5, layout in data/sft_store_format.h) holding
// every sample's ids, both label masks and its tiles/frames as u8 levels, so training reads samples
// without decoding or resizing media and gets the JSONL path's samples bit for bit. Every sample is built
// first, so a bad line (bad JSON, unknown role, missing or undecodable media, no assistant turn, longer
// than max_tokens) fails the pack with file:line and leaves no output. Writing goes to OUT.tmp-PID, is
// fsynced and renamed over OUT, so OUT is either absent, the old file or a complete store.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>

#include "absl/status/statusor.h"
#include "data/hdf5_file.h"
#include "data/processor_config.h"
#include "data/sft_sample.h"
#include "data/tokenizer.h"

namespace plm::data {

struct PackOptions {
  hdf5::Compression compression;
  std::function<void(int64_t done, int64_t total)> progress;  // after each sample; may be empty
};

struct PackSummary {
  int64_t num_samples = 0;
  int64_t num_tokens = 0;
  int64_t num_labelled_assistant = 0;
  int64_t num_image_tiles = 0;
  int64_t num_video_frames = 0;
  int64_t file_bytes = 0;
};

// config.labels does not matter (both masks are stored); config.max_tokens and config.media do.
absl::StatusOr<PackSummary> pack_sft_store(const std::filesystem::path& jsonl, const std::filesystem::path& out,
                                           const Tokenizer& tokenizer, const ProcessorConfig& processor,
                                           const SftDataConfig& config, const PackOptions& options = {});

}  // namespace plm::data
