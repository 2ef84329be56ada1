// The merge: every part of a job (caption/part_file.h) into one output, a line per input item in input order,
// and, when asked, the HDF5 file of its pooled embeddings in the same order. Streaming: the parts are indexed
// (id -> file, offset) and the lines read back one at a time, so memory holds the index, not the lines. When an
// id has several lines (a job restarted over another replica count), a caption wins over an error, else the
// first. The outputs are written to temporary files and renamed into place: whole or absent.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "caption/caption_inputs.h"

namespace plm::caption {

struct MergeSummary {
  int64_t num_items = 0;
  int64_t num_captions = 0;
  int64_t num_errors = 0;
  int64_t num_embeddings = 0;  // rows in the HDF5 file
  int64_t num_parts = 0;
};

// FailedPrecondition, writing nothing, when an item has no line in the parts (the count and the first ids named).
absl::StatusOr<MergeSummary> merge_parts(const std::vector<CaptionItem>& items, const std::filesystem::path& out,
                                         const std::optional<std::filesystem::path>& embeddings_out);

}  // namespace plm::caption
