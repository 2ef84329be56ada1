// OptimizerStateReader: the AdamW state of a training checkpoint (its optim-rankNNNNN files,
// trainer/training_checkpoint.h) as the layout that saved it left it: per pipeline stage and TP rank (a "part"), a
// flat vector split into DP shards, with the vector's layout (each parameter's offset, shape and tensor slice). It
// reads any range of a part's vector (a run resuming at the saving TP and PP degrees, at any DP size or ZeRO stage),
// and the state of one whole parameter, put together from the TP ranks' slices (model/weights/tensor_slice.h) of
// whichever stage held it — from which a run at another TP or PP degree takes its own slice. Files are mapped, not
// read, until a range is asked for. Immutable after open().
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

  // One flat vector of the saving layout: a pipeline stage's TP rank.
  struct Part {
    int pp_rank = 0;
    int tp_rank = 0;
    auto operator<=>(const Part&) const = default;
  };

  int tp_size() const { return tp_size_; }
  int pp_size() const { return pp_size_; }
  int64_t steps() const { return steps_; }  // AdamW steps taken
  // Whether `part`'s vector holds exactly the parameters `layout` gives (name -> offset, numel), in the same places:
  // a range of it is then this run's. Without recorded layouts, whether the lengths agree.
  bool same_layout(const Part& part, const std::map<std::string, std::pair<int64_t, int64_t>>& layout) const;

  // out (n) f32 = elements [begin, begin + n) of `state` (kMasterState, ...) of `part`'s vector.
  absl::Status read_range(const Part& part, const std::string& state, int64_t begin, Tensor out) const;
  // whole (the HF tensor's shape or its element count) f32 = `state` of parameter `name`, from every TP rank's
  // slice of it on the first stage that held it (a tied head's copy on the last stage is the same state). An error
  // when no part's layout has the parameter.
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
  struct Vector {
    int64_t numel = 0;
    std::vector<File> files;
    std::map<std::string, LayoutEntry> layout;  // empty: written before the layout was recorded
  };

  std::filesystem::path dir_;
  int tp_size_ = 1, pp_size_ = 1;
  int64_t steps_ = 0;
  std::map<Part, Vector> parts_;
};

}  // namespace plm::trainer
