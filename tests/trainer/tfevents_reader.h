// A test-side decoder of TensorBoard event files, written independently of trainer/tensorboard_writer.cc:
// it checks both CRCs of every TFRecord frame (with trainer/tfrecord.h's CRC-32C, itself checked against
// published vectors) and decodes the tensorflow.Event fields the writer uses, skipping unknown fields the
// way protobuf does.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace plm::trainer::testing {

struct DecodedEvent {
  double wall_time = 0.0;
  int64_t step = 0;
  std::string file_version;                          // empty unless set
  std::vector<std::pair<std::string, float>> scalars;  // Summary.value: (tag, simple_value)
  std::optional<int> session_log_status;             // SessionLog.status when a session_log is present
};

absl::StatusOr<std::vector<DecodedEvent>> read_tfevents(const std::filesystem::path& path);

}  // namespace plm::trainer::testing
