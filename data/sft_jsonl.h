// SFT JSONL, one conversation per line in HF's `messages` format:
//   {"messages": [{"role": "system"|"user"|"assistant", "content": "text" | [{"type": "text", "text": ...},
//                  {"type": "image", "path": REL}, {"type": "video", "path": REL}]}]}
// Media may be named by "path", "url", "image" or "video" (as HF) and relative paths are relative to the
// JSONL file. A string content is one text part (HF's template would render a plain string as an empty
// turn; plm takes the text). Blank lines are not samples; line numbers in messages are the file's.
// Thread safety: sample() re-reads its line through its own stream, so concurrent calls are safe.
#pragma once

#include <filesystem>
#include <memory>
#include <string_view>
#include <vector>

#include "data/sft_dataset.h"

namespace plm::data {

// One line -> a validated conversation whose media paths are resolved against base_dir. Errors name the
// problem (the caller adds file:line).
absl::StatusOr<std::vector<ChatMessage>> parse_sft_line(std::string_view line, const std::filesystem::path& base_dir);

class SftJsonlDataset final : public SftDataset {
 public:
  // Indexes the lines and checks each one with parse_sft_line plus the existence of its media files.
  static absl::StatusOr<std::unique_ptr<SftJsonlDataset>> open(const std::filesystem::path& path,
                                                               const Tokenizer& tokenizer,
                                                               const ProcessorConfig& processor,
                                                               const SftDataConfig& config);

  int64_t size() const override { return static_cast<int64_t>(lines_.size()); }
  absl::StatusOr<SftSample> sample(int64_t index) const override;
  absl::StatusOr<SampleExtent> extent(int64_t index) const override;
  std::string location(int64_t index) const override;

  // The sample with both label masks: what a store keeps.
  absl::StatusOr<SftExample> example(int64_t index) const;
  const std::filesystem::path& path() const { return path_; }

 private:
  struct Line {
    int64_t offset;  // bytes into the file
    int64_t length;
    int64_t number;  // 1-based
  };

  SftJsonlDataset(std::filesystem::path path, const Tokenizer& tokenizer, const ProcessorConfig& processor,
                  const SftDataConfig& config, std::vector<Line> lines);

  std::filesystem::path path_;
  const Tokenizer& tokenizer_;
  ProcessorConfig processor_;
  SftDataConfig config_;
  std::vector<Line> lines_;  // one per sample
};

}  // namespace plm::data
