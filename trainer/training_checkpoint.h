// What a training checkpoint holds and how a run saves and restores it (the directory protocol, atomicity and
// verification are checkpoint_io.h's):
//   model-rank00000.safetensors  rank 0: every trainable parameter under its HF name, in the working dtype
//                                (frozen parameters are not saved: they are the base model's)
//   optim-rankNNNNN.safetensors  each rank holding a distinct optimizer shard (every rank with ZeRO-1/2, rank 0
//                                with ZeRO-0): "master", "exp_avg", "exp_avg_sq", F32 (shard size), with metadata
//                                begin / end (its range of the flat trainable vector), numel (the vector's
//                                length) and steps (AdamW steps taken)
//   train_state.json             rank 0 (train_state.h)
//   run.json                     rank 0: what the run was (base model directory, trainable parts, LoRA), for
//                                `plm convert` and for checking a resume
// Restoring reads the parameters from rank 0's file and, for this rank's shard under the current layout, the
// overlapping ranges of whichever optimizer files cover it, so a checkpoint resumes on another DP size or ZeRO
// stage. The trainable set must be the same (same freeze / LoRA settings): a difference is an error naming it.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <ostream>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "distributed/communicator.h"
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

// Collective over `world` (the run's ranks). Writes state.step's checkpoint, commits it on rank 0 and prunes old
// ones; returns its directory. `log` (rank 0's, may be null) gets a line per pruned directory. A save that fails on
// any rank (a full disk) fails on all, after rank 0 removed its partial files; earlier checkpoints stay as they were.
absl::StatusOr<std::filesystem::path> save_training_checkpoint(const std::filesystem::path& output_dir,
                                                               const TrainState& state, DataParallelStep& step,
                                                               distributed::Communicator& world,
                                                               const CheckpointSaveOptions& options, std::ostream* log);

// Loads the checkpoint in `dir` into `step`'s parameters and this rank's optimizer shard; returns its TrainState.
// Files are verified against the marker's sizes and CRCs before they are read.
absl::StatusOr<TrainState> restore_training_checkpoint(const std::filesystem::path& dir, DataParallelStep& step);

// Copies rank 0's saved parameters into `targets` (HF name -> destination, any shape of the same size, cast to
// its dtype). A saved tensor that is not a target is an error, as is (when every_target_saved) a target the
// checkpoint lacks.
absl::Status read_checkpoint_parameters(const std::filesystem::path& dir, const std::map<std::string, Tensor>& targets,
                                        bool every_target_saved);

// dir/run.json.
absl::StatusOr<nlohmann::json> read_run_info(const std::filesystem::path& dir);

}  // namespace plm::trainer
