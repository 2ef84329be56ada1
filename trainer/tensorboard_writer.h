// TensorBoardWriter: scalar summaries as a TensorBoard event file (TFRecord frames of hand-encoded
// tensorflow.Event protobufs), no TensorFlow or protobuf library needed. Each open() starts a new file
// events.out.tfevents.<unix seconds>.<host>.<pid>.<n> whose first event is file_version "brain.Event:2",
// followed by a SessionLog START at the first step this run will write: TensorBoard then drops the events of
// earlier files with step >= that step, so the curves of a resumed run have no stale tail. Every event is
// flushed as written. Not thread-safe.
#pragma once

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace plm::trainer {

class TensorBoardWriter {
 public:
  // Creates `dir` if needed. `first_step`: the first step this run logs (resumed step + 1).
  static absl::StatusOr<std::unique_ptr<TensorBoardWriter>> open(const std::filesystem::path& dir,
                                                                 int64_t first_step);
  ~TensorBoardWriter();
  TensorBoardWriter(const TensorBoardWriter&) = delete;
  TensorBoardWriter& operator=(const TensorBoardWriter&) = delete;

  // One event holding a Summary with one simple_value per (tag, value).
  absl::Status add_scalars(int64_t step, const std::vector<std::pair<std::string, float>>& values);
  const std::filesystem::path& path() const { return path_; }

 private:
  TensorBoardWriter(std::filesystem::path path, std::FILE* file) : path_(std::move(path)), file_(file) {}
  absl::Status write_event(const std::string& event);

  std::filesystem::path path_;
  std::FILE* file_;
};

}  // namespace plm::trainer
