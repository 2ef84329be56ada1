// What a training checkpoint holds and how a run saves and restores it (the directory protocol, atomicity and
// verification are checkpoint_io.h's):
//   model-rank00000.safetensors  rank 0: every trainable parameter under its HF name, whole (gathered over TP by
//                                the ranks' tensor slices), in the working dtype (frozen parameters are not saved:
//                                they are the base model's)
//   optim-rankNNNNN.safetensors  each rank holding a distinct optimizer shard (every rank with ZeRO-1/2, the first
//                                DP rank of each TP rank with ZeRO-0): "master", "exp_avg", "exp_avg_sq", F32 (shard
//                                size), with metadata begin / end (its range of its TP rank's flat trainable vector),
//                                numel (the vector's length), steps (AdamW steps taken), tp_rank / tp_size (absent:
//                                0 / 1) and layout: the flat vector's entries as JSON, [{"name", "offset",
//                                "shape", "slice": {"dim", "parts", "num_parts"}}] (model/weights/tensor_slice.h)
//   train_state.json             rank 0 (train_state.h)
//   run.json                     rank 0: what the run was (base model directory, trainable parts, LoRA), for
//                                `plm convert` and for checking a resume
// Restoring reads the parameters from rank 0's file (each rank taking its tensor slices) and, for this rank's shard
// under the current layout, its optimizer state (trainer/optimizer_state_reader.h): at the saving TP degree the
// overlapping ranges of whichever files of its TP rank cover it, at another TP degree each parameter's state put
// together from the saving TP ranks' slices and cut by this rank's slice. So a checkpoint resumes at another DP
// size, ZeRO stage or TP degree. The trainable set must be the same (same freeze / LoRA settings): a difference is
// an error naming it.
#pragma once

#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <ostream>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "distributed/communicator.h"
#include "model/weights/tensor_slice.h"
#include "trainer/checkpoint_io.h"
#include "trainer/data_parallel_step.h"
#include "trainer/train_state.h"

namespace plm::trainer {

inline constexpr const char* kRunInfoFile = "run.json";

struct CheckpointSaveOptions {
  CheckpointLayout layout;
  int keep = 2;             // checkpoint.keep
  nlohmann::json run_info;  // written as run.json
};

// Collective over `world` (the run's ranks; step's DP group and its model's TP group are groups of it). Writes
// state.step's checkpoint, commits it on rank 0 and prunes old ones; returns its directory. `log` (rank 0's, may be
// null) gets a line per pruned directory. A save that fails on any rank (a full disk) fails on all, after rank 0
// removed its partial files; earlier checkpoints stay as they were.
absl::StatusOr<std::filesystem::path> save_training_checkpoint(const std::filesystem::path& output_dir,
                                                               const TrainState& state, DataParallelStep& step,
                                                               distributed::Communicator& world,
                                                               const CheckpointSaveOptions& options, std::ostream* log);

// Loads the checkpoint in `dir` into `step`'s parameters and this rank's optimizer shard; returns its TrainState.
// Files are verified against the marker's sizes and CRCs before they are read.
absl::StatusOr<TrainState> restore_training_checkpoint(const std::filesystem::path& dir, DataParallelStep& step);

// Where a saved parameter goes: `value` (cast to its dtype) receives `slice` of the saved whole tensor.
struct ParameterTarget {
  Tensor value;
  model::TensorSlice slice;  // whole by default
};

// Copies rank 0's saved parameters into `targets` (HF name -> destination). A saved tensor that is neither a target
// nor in held_elsewhere (parameters of the model that other ranks hold) is an error, as is (when
// every_target_saved) a target the checkpoint lacks.
absl::Status read_checkpoint_parameters(const std::filesystem::path& dir,
                                        const std::map<std::string, ParameterTarget>& targets, bool every_target_saved,
                                        const std::set<std::string>& held_elsewhere = {});

// dir/run.json.
absl::StatusOr<nlohmann::json> read_run_info(const std::filesystem::path& dir);

}  // namespace plm::trainer
