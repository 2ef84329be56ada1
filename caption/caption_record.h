// One finished item of a caption job, and its JSON line. The output (merged) line is
//   {"id","path","caption","frames","prompt_tokens","completion_tokens","seconds"}   or   {"id","path","error"}
// A part line (the job's journal, caption/part_file.h) may carry one more field, "embedding": the pooled vision
// embedding as base64 of little-endian f32, which the merge moves into the HDF5 file. Pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace plm::caption {

struct CaptionRecord {
  std::string id{};
  std::string path{};
  std::optional<std::string> error{};  // set: the item failed, the fields below are unset
  std::string caption{};
  int64_t frames = 0;                // video frames (or image tiles) through the vision tower
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  double seconds = 0;                // from the start of its decode to its last token
  std::vector<float> embedding{};    // (H), or empty

  bool ok() const { return !error.has_value(); }
};

enum class LineFields { kOutput, kPart };  // kPart keeps the embedding

// One line without the newline.
std::string record_line(const CaptionRecord& record, LineFields fields);
// InvalidArgument naming the problem when the line is not a record (the caller adds the file and line).
absl::StatusOr<CaptionRecord> parse_record_line(const std::string& line);

}  // namespace plm::caption
