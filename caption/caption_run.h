// One rank's part of `plm caption`: the data-parallel layout, the inputs and this replica's shard (minus what an
// earlier run finished), the model and its serving engine, the job, the shared finish, and rank 0's merge.
// A data-parallel replica is a tensor-parallel group of `tp` adjacent ranks whose group rank 0 runs the job and
// the engine; the group's other ranks load their share of the model and follow the engine's steps
// (serve/step_mirror.h). The replicas' lead ranks talk over the DP communicator.
#pragma once

#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "caption/caption_job.h"
#include "caption/merge.h"
#include "core/device.h"
#include "distributed/communicator.h"
#include "serve/engine.h"

namespace plm::caption {

// One of `count` disjoint parts of the input list (round robin), for jobs run separately (a Slurm array): such a
// run writes OUT.shard-S.rank-R parts and leaves the merge to `plm caption --merge` once every shard is done.
struct InputShard {
  int index = 0;
  int count = 1;
};

struct CaptionRunConfig {
  std::filesystem::path model_dir;
  std::filesystem::path inputs;
  std::filesystem::path out;
  std::optional<std::filesystem::path> embeddings_out;  // --save-embeddings
  std::optional<InputShard> shard;                      // --shard S/N
  DeviceType device = DeviceType::kCpu;
  std::string dtype;  // --dtype (runtime/compute_dtype.h): "" is the device's default
  int tp = 1;
  // On a GPU: the device-side twin of a TP group (NCCL over it), which the model and the step mirror's media
  // rows use; unset on the CPU (the group itself).
  std::function<std::unique_ptr<distributed::Communicator>(distributed::Communicator& group, int device)> device_group;
  serve::EngineConfig engine;
  CaptionJobConfig job;
  std::FILE* log = stderr;  // rank 0's progress and summary
};

// Collective over `world` (a single-rank communicator without a launcher). InvalidArgument for a layout that
// does not fit (the arithmetic named); every rank returns the first failing replica's error.
absl::Status run_caption(const CaptionRunConfig& config, std::unique_ptr<distributed::Communicator> world);

// `plm caption --merge`: the parts of `out` into `out` (and the embeddings), in the order of `inputs`.
// FailedPrecondition, writing nothing, while some item has no line (a shard still running).
absl::StatusOr<MergeSummary> run_merge(const std::filesystem::path& inputs, const std::filesystem::path& out,
                                       const std::optional<std::filesystem::path>& embeddings_out);

// "captions.jsonl: 100 lines (98 captions, 2 errors) from 2 parts[; embeddings.h5: 98 rows]"
std::string merge_summary_line(const MergeSummary& s, const std::filesystem::path& out,
                               const std::optional<std::filesystem::path>& embeddings_out);

}  // namespace plm::caption
