// The --save-embeddings file: one pooled vision embedding per captioned item, in HDF5, readable by h5py:
//   /embeddings  f32 (N, H), chunked (64 rows), shuffled + deflated + Fletcher-32
//   /ids         variable-length UTF-8 strings (N): row i is the embedding of item ids[i]
//   attribute plm_caption: JSON {"pooling": ..., "dim": H}
// Written to a temporary file beside the target and renamed over it by finish(), so the target is whole or absent.
// Not thread-safe.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "data/hdf5_file.h"

namespace plm::caption {

inline constexpr char kEmbeddingPooling[] =
    "mean over every post-projector row (the LLM-input embeddings) of the item's video frames or image tiles";

class EmbeddingWriter {
 public:
  static absl::StatusOr<std::unique_ptr<EmbeddingWriter>> create(const std::filesystem::path& path);
  EmbeddingWriter(const EmbeddingWriter&) = delete;
  EmbeddingWriter& operator=(const EmbeddingWriter&) = delete;
  ~EmbeddingWriter();  // removes the temporary file unless finish() succeeded

  // Every embedding must have the first one's width.
  absl::Status append(const std::string& id, const std::vector<float>& embedding);
  // Writes the ids and the attribute, closes, and renames into place.
  absl::Status finish();
  int64_t num_rows() const { return static_cast<int64_t>(ids_.size()); }

 private:
  EmbeddingWriter(std::filesystem::path path, std::filesystem::path temp, data::hdf5::File file)
      : path_(std::move(path)), temp_(std::move(temp)), file_(std::move(file)) {}
  absl::Status flush_rows();

  std::filesystem::path path_, temp_;
  std::optional<data::hdf5::File> file_;
  std::optional<data::hdf5::Dataset> embeddings_;  // created with the first row
  std::vector<std::string> ids_;
  std::vector<float> pending_;  // rows not yet appended, row-major
  int64_t dim_ = 0;
  bool finished_ = false;
};

}  // namespace plm::caption
