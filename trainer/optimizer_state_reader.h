// OptimizerStateReader: the AdamW state of a training checkpoint (its optim-rankNNNNN files,
// trainer/training_checkpoint.h) as the layout that saved it left it: per TP rank, a flat vector split into DP
// shards, with the vector's layout (each parameter's offset, shape and tensor slice). It reads any range of a TP
// rank's vector (a run resuming at the saving TP degree, at any DP size or ZeRO stage), and the state of one whole
// parameter, put together from the TP ranks' slices (model/weights/tensor_slice.h) — from which a run at another
// TP degree takes its own slice. Files are mapped, not read, until a range is asked for. Immutable after open().
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/tensor.h"
#include "model/weights/safetensors.h"
#include "model/weights/tensor_slice.h"
#include "trainer/checkpoint_io.h"

namespace plm::trainer {

// The tensors of an optimizer file, each (shard size) f32.
inline constexpr const char* kMasterState = "master";
inline constexpr const char* kExpAvgState = "exp_avg";
inline constexpr const char* kExpAvgSqState = "exp_avg_sq";

class OptimizerStateReader {
 public:
  // Opens the optimizer files `marker` lists in `dir`; errors name the file.
  static absl::StatusOr<OptimizerStateReader> open(const std::filesystem::path& dir, const CheckpointMarker& marker);

  int tp_size() const { return tp_size_; }
  int64_t steps() const { return steps_; }  // AdamW steps taken
  // The length of TP rank `tp_rank`'s flat vector.
  int64_t numel(int tp_rank) const;

  // out (n) f32 = elements [begin, begin + n) of `state` (kMasterState, ...) of TP rank `tp_rank`'s vector.
  absl::Status read_range(int tp_rank, const std::string& state, int64_t begin, Tensor out) const;
  // whole (the HF tensor's shape or its element count) f32 = `state` of parameter `name`, from every TP rank's
  // slice of it. An error when no TP rank's layout has the parameter.
  absl::Status read_whole(const std::string& name, const std::string& state, Tensor whole) const;

 private:
  struct File {
    std::unique_ptr<model::SafetensorsFile> file;
    int64_t begin = 0, end = 0;  // its range of its TP rank's vector
  };
  struct LayoutEntry {
    int64_t offset = 0;
    Shape shape;
    model::TensorSlice slice;
  };
  struct TpRank {
    int64_t numel = 0;
    std::vector<File> files;
    std::map<std::string, LayoutEntry> layout;  // empty: written before the layout was recorded
  };

  std::filesystem::path dir_;
  int tp_size_ = 1;
  int64_t steps_ = 0;
  std::map<int, TpRank> ranks_;  // by TP rank
};

}  // namespace plm::trainer
