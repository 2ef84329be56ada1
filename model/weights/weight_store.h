// WeightStore: the tensors of a checkpoint by name, over one `model.safetensors` or the shards listed in
// `model.safetensors.index.json` (spec/plm_spec.md §5.4). Every shard is mapped and validated at open().
//
// Memory: a checkpoint is never read into memory as a whole. view() points into the read-only mapping
// (no copy); load() and load_slice() convert straight from the mapping into the destination buffer,
// one tensor at a time. Loading a 3 GB bf16 1B checkpoint as f32 therefore holds the 6 GB of f32 weights
// plus whatever file pages the kernel keeps cached (clean, file-backed, dropped under pressure), never a
// second private copy of the file. Thread-safety: immutable after open(); concurrent reads are safe.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/tensor.h"
#include "model/weights/safetensors.h"

namespace plm::model {

struct TensorInfo {
  DType dtype = DType::kF32;  // as stored
  Shape shape;
  std::string file;           // the shard holding it
};

class WeightStore {
 public:
  // `path`: a model directory (index json if present, else model.safetensors), an index json, or one
  // .safetensors file.
  static absl::StatusOr<WeightStore> open(const std::string& path);

  WeightStore(WeightStore&&) noexcept = default;
  WeightStore& operator=(WeightStore&&) noexcept = default;
  WeightStore(const WeightStore&) = delete;
  WeightStore& operator=(const WeightStore&) = delete;

  const std::string& source() const { return source_; }  // what open() was given
  std::vector<std::string> names() const;                 // sorted
  bool contains(const std::string& name) const { return tensors_.contains(name); }
  size_t size() const { return tensors_.size(); }
  size_t num_files() const { return files_.size(); }
  absl::StatusOr<TensorInfo> info(const std::string& name) const;

  // A zero-copy CPU view in the stored dtype. The memory is read-only and lives as long as the store.
  absl::StatusOr<Tensor> view(const std::string& name) const;
  // A contiguous CPU copy, converted to `dtype` when given (f32, bf16 and f16 convert among themselves,
  // rounding to nearest even when narrowing; other dtypes only copy as they are).
  absl::StatusOr<OwnedTensor> load(const std::string& name, std::optional<DType> dtype = std::nullopt) const;
  // Tensor parallelism: rank `rank`'s contiguous 1/num_ranks of dim `dim` (negative counts from the end),
  // copying and converting only that slice. An error if the dim does not divide by num_ranks.
  absl::StatusOr<OwnedTensor> load_slice(const std::string& name, int dim, int rank, int num_ranks,
                                         std::optional<DType> dtype = std::nullopt) const;

 private:
  struct Location {
    const SafetensorsFile* file;
    const SafetensorsEntry* entry;
  };
  WeightStore() = default;
  absl::Status add_file(std::unique_ptr<SafetensorsFile> file);
  absl::StatusOr<Location> find(const std::string& name) const;

  std::string source_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, Location> tensors_;
};

}  // namespace plm::model
