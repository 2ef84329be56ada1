// The training data behind `data.train`: SFT samples by index from either an SFT JSONL file (one
// conversation per line, media preprocessed when a sample is asked for) or a store written by
// `plm data pack` (.h5: tokens, both label masks and u8 pixels, read back bit-identical to the JSONL path).
// A bad line or sample is an error naming file:line (JSONL) or file and sample (store) and is fatal to
// whoever asked: nothing is skipped silently. Opening a JSONL file already checks every line's JSON,
// roles, assistant turn and media files; decoding problems and max_tokens show when that sample is built
// (pack a file to check every sample up front).
// Thread safety: sample() and extent() may be called concurrently from any threads.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "data/processor_config.h"
#include "data/sft_sample.h"
#include "data/tokenizer.h"

namespace plm::data {

// What a sample costs before its pixels are read: its length and the vision tower's batch.
struct SampleExtent {
  int64_t num_tokens = 0;
  int64_t num_vision_tiles = 0;  // image tiles + video frames
};

class SftDataset {
 public:
  virtual ~SftDataset() = default;
  SftDataset() = default;
  SftDataset(const SftDataset&) = delete;
  SftDataset& operator=(const SftDataset&) = delete;

  virtual int64_t size() const = 0;
  // index in [0, size()).
  virtual absl::StatusOr<SftSample> sample(int64_t index) const = 0;
  // A store reads it from its offsets; a JSONL file builds the sample.
  virtual absl::StatusOr<SampleExtent> extent(int64_t index) const = 0;
  // Where sample `index` comes from, for messages: "train.jsonl:17" or "train.h5 sample 16".
  virtual std::string location(int64_t index) const = 0;
};

// By extension: .jsonl, or .h5 / .hdf5 (a store, whose tokenizer, processor and frame settings must match
// these). `tokenizer` must outlive the dataset.
absl::StatusOr<std::unique_ptr<SftDataset>> open_sft_dataset(const std::filesystem::path& path,
                                                             const Tokenizer& tokenizer,
                                                             const ProcessorConfig& processor,
                                                             const SftDataConfig& config);

}  // namespace plm::data
