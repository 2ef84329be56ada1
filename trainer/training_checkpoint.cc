#include "trainer/training_checkpoint.h"

#include <unistd.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/status_macros.h"
#include "distributed/status_agreement.h"
#include "model/json_fields.h"
#include "model/weights/safetensors.h"
#include "model/weights/weight_store.h"

namespace plm::trainer {

namespace {

constexpr const char* kMaster = "master";
constexpr const char* kExpAvg = "exp_avg";
constexpr const char* kExpAvgSq = "exp_avg_sq";

// Whether this rank holds an optimizer shard no lower rank holds (ZeRO-0 replicates it on every rank).
bool writes_optimizer_shard(DataParallelStep& step, int rank) {
  return rank == 0 || step.zero_stage() > 0;
}

absl::Status write_rank_files(CheckpointWriter& writer, const TrainState& state, DataParallelStep& step, int rank,
                              const nlohmann::json& run_info) {
  if (rank == 0) {
    PLM_RETURN_IF_ERROR(writer.write_json(kRunInfoFile, run_info));
    std::vector<model::NamedTensor> params;
    OwnedTensor host = to_device(step.params().flat(), Device::cpu());
    for (const model::FlatEntry& e : step.params().entries()) {
      params.push_back({e.name, host.view().slice(0, e.offset, e.offset + e.numel).reshape(e.shape)});
    }
    PLM_RETURN_IF_ERROR(writer.write_tensors(rank_file_name(ShardKind::kModel, 0), params));
    PLM_RETURN_IF_ERROR(writer.write_json(kTrainStateFile, train_state_to_json(state)));
  }
  if (writes_optimizer_shard(step, rank)) {
    const ShardedAdamW& adam = step.optimizer();
    const OwnedTensor master = to_device(adam.master(), Device::cpu());
    const OwnedTensor exp_avg = to_device(adam.exp_avg(), Device::cpu());
    const OwnedTensor exp_avg_sq = to_device(adam.exp_avg_sq(), Device::cpu());
    const std::map<std::string, std::string> metadata = {
        {"begin", absl::StrCat(adam.shard().begin)},
        {"end", absl::StrCat(adam.shard().end)},
        {"numel", absl::StrCat(step.params().numel())},
        {"steps", absl::StrCat(adam.steps_taken())}};
    PLM_RETURN_IF_ERROR(writer.write_tensors(
        rank_file_name(ShardKind::kOptimizer, rank),
        {{kMaster, master.view()}, {kExpAvg, exp_avg.view()}, {kExpAvgSq, exp_avg_sq.view()}}, metadata));
  }
  return writer.finish();
}

// Rank 0's pid, known to every rank: the staging directory's name.
int64_t broadcast_writer_pid(distributed::Communicator& world) {
  OwnedTensor pid({1}, DType::kI64);
  pid.data_as<int64_t>()[0] = static_cast<int64_t>(getpid());
  world.broadcast(pid.view(), 0);
  return pid.data_as<int64_t>()[0];
}

absl::StatusOr<int64_t> metadata_int(const model::SafetensorsFile& file, const std::string& key,
                                     const std::filesystem::path& path) {
  const auto it = file.metadata().find(key);
  int64_t value = 0;
  if (it == file.metadata().end() || !absl::SimpleAtoi(it->second, &value)) {
    return absl::DataLossError(absl::StrCat(path.string(), ": metadata '", key, "' is missing or not an integer"));
  }
  return value;
}

absl::Status restore_parameters(const std::filesystem::path& dir, DataParallelStep& step) {
  std::map<std::string, Tensor> targets;
  const Tensor flat = step.params().flat();
  for (const model::FlatEntry& e : step.params().entries()) {
    targets[e.name] = flat.slice(0, e.offset, e.offset + e.numel).reshape(e.shape);
  }
  return read_checkpoint_parameters(dir, targets, /*every_target_saved=*/true);
}

absl::Status restore_optimizer(const std::filesystem::path& dir, const CheckpointMarker& marker,
                               DataParallelStep& step) {
  ShardedAdamW& adam = step.optimizer();
  const Range mine = adam.shard();
  int64_t covered = 0, steps = -1;
  for (const auto& [name, digest] : marker.files) {
    if (!name.starts_with("optim-rank")) continue;
    const std::filesystem::path path = dir / name;
    PLM_ASSIGN_OR_RETURN(const std::unique_ptr<model::SafetensorsFile> file,
                         model::SafetensorsFile::open(path.string()));
    PLM_ASSIGN_OR_RETURN(const int64_t begin, metadata_int(*file, "begin", path));
    PLM_ASSIGN_OR_RETURN(const int64_t end, metadata_int(*file, "end", path));
    PLM_ASSIGN_OR_RETURN(const int64_t numel, metadata_int(*file, "numel", path));
    PLM_ASSIGN_OR_RETURN(const int64_t file_steps, metadata_int(*file, "steps", path));
    if (numel != step.params().numel()) {
      return absl::FailedPreconditionError(absl::StrCat(path.string(), ": optimizer state for ", numel,
                                                        " trainable elements, this run trains ",
                                                        step.params().numel()));
    }
    if (steps >= 0 && steps != file_steps) {
      return absl::DataLossError(absl::StrCat(path.string(), ": AdamW steps ", file_steps, " differ from ", steps,
                                              " in another shard"));
    }
    steps = file_steps;
    const int64_t from = std::max(begin, mine.begin), to = std::min(end, mine.end);
    if (from >= to) continue;
    PLM_ASSIGN_OR_RETURN(const model::WeightStore store, model::WeightStore::open(path.string()));
    const std::pair<const char*, Tensor> parts[] = {
        {kMaster, adam.master()}, {kExpAvg, adam.exp_avg()}, {kExpAvgSq, adam.exp_avg_sq()}};
    for (const auto& [key, target] : parts) {
      PLM_ASSIGN_OR_RETURN(const Tensor saved, store.view(key));
      if (saved.dtype() != DType::kF32 || saved.numel() != end - begin) {
        return absl::DataLossError(absl::StrCat(path.string(), ": '", key, "' is not F32 (", end - begin, ")"));
      }
      copy_tensor(target.slice(0, from - mine.begin, to - mine.begin), saved.slice(0, from - begin, to - begin));
    }
    covered += to - from;
  }
  // Shards of one checkpoint never overlap, so full coverage is exactly the shard's size.
  if (covered != mine.size()) {
    return absl::DataLossError(absl::StrCat(dir.string(), ": the optimizer files cover ", covered, " of the ",
                                            mine.size(), " elements of this rank's shard [", mine.begin, ", ",
                                            mine.end, ")"));
  }
  adam.set_steps_taken(steps);
  return absl::OkStatus();
}

}  // namespace

absl::Status read_checkpoint_parameters(const std::filesystem::path& dir, const std::map<std::string, Tensor>& targets,
                                        bool every_target_saved) {
  const std::filesystem::path path = dir / rank_file_name(ShardKind::kModel, 0);
  PLM_ASSIGN_OR_RETURN(const model::WeightStore store, model::WeightStore::open(path.string()));
  std::vector<std::string> unknown, missing;
  for (const std::string& name : store.names()) {
    if (!targets.contains(name)) unknown.push_back(name);
  }
  for (const auto& [name, target] : targets) {
    if (!store.contains(name)) {
      missing.push_back(name);
      continue;
    }
    PLM_ASSIGN_OR_RETURN(const OwnedTensor value, store.load(name, target.dtype()));
    if (value.numel() != target.numel()) {
      return absl::DataLossError(absl::StrCat(path.string(), ": ", name, " has ", value.numel(),
                                              " elements, the model's parameter ", target.numel()));
    }
    copy_tensor(target, value.view().reshape(target.shape()));
  }
  if (!unknown.empty() || (every_target_saved && !missing.empty())) {
    return absl::FailedPreconditionError(absl::StrCat(
        dir.string(), ": the checkpoint was trained with other trainable parameters (freeze / lora settings differ)",
        every_target_saved && !missing.empty() ? absl::StrCat("; not in the checkpoint: ", absl::StrJoin(missing, ", ")) : "",
        unknown.empty() ? "" : absl::StrCat("; not parameters of this model: ", absl::StrJoin(unknown, ", "))));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::filesystem::path> save_training_checkpoint(const std::filesystem::path& output_dir,
                                                               const TrainState& state, DataParallelStep& step,
                                                               distributed::Communicator& world,
                                                               const CheckpointSaveOptions& options,
                                                               std::ostream* log) {
  const int64_t writer_pid = broadcast_writer_pid(world);
  absl::Status saved = [&]() -> absl::Status {
    absl::Status local = [&]() -> absl::Status {
      PLM_ASSIGN_OR_RETURN(CheckpointWriter writer,
                           CheckpointWriter::begin(output_dir, state.step, world.rank(), writer_pid));
      return write_rank_files(writer, state, step, world.rank(), options.run_info);
    }();
    PLM_RETURN_IF_ERROR(distributed::agree_on_status(world, local, "rank", Device::cpu()));
    const absl::Status committed =
        world.rank() == 0 ? commit_checkpoint(output_dir, state.step, writer_pid, options.layout).status()
                          : absl::OkStatus();
    return distributed::agree_on_status(world, committed, "rank", Device::cpu());
  }();
  if (!saved.ok()) {
    // Every rank is past its writes: the partial files go, so that a full disk is not left fuller.
    const absl::Status discarded =
        world.rank() == 0 ? discard_staging(output_dir, state.step, writer_pid) : absl::OkStatus();
    return absl::Status(saved.code(),
                        absl::StrCat("checkpoint of step ", state.step, " not saved (",
                                     discarded.ok() ? "its partial files are removed, "
                                                    : absl::StrCat(discarded.message(), "; "),
                                     "the earlier checkpoints are untouched): ", saved.message()));
  }
  absl::Status pruned = absl::OkStatus();
  if (world.rank() == 0) {
    absl::StatusOr<std::vector<std::filesystem::path>> removed = prune_checkpoints(output_dir, options.keep);
    pruned = removed.status();
    if (removed.ok() && log != nullptr) {
      for (const std::filesystem::path& p : *removed) *log << "removed old checkpoint " << p.string() << "\n";
    }
  }
  PLM_RETURN_IF_ERROR(distributed::agree_on_status(world, pruned, "rank", Device::cpu()));
  return checkpoints_dir(output_dir) / step_dir_name(state.step);
}

absl::StatusOr<TrainState> restore_training_checkpoint(const std::filesystem::path& dir, DataParallelStep& step) {
  PLM_ASSIGN_OR_RETURN(const CheckpointMarker marker, read_checkpoint_marker(dir));
  PLM_RETURN_IF_ERROR(verify_checkpoint_files(dir, marker, Verify::kSizesAndCrcs));
  PLM_RETURN_IF_ERROR(restore_parameters(dir, step));
  PLM_RETURN_IF_ERROR(restore_optimizer(dir, marker, step));
  return read_train_state(dir);
}

absl::StatusOr<nlohmann::json> read_run_info(const std::filesystem::path& dir) {
  const std::filesystem::path path = dir / kRunInfoFile;
  PLM_ASSIGN_OR_RETURN(const std::string text, model::read_text_file(path.string()));
  PLM_ASSIGN_OR_RETURN(nlohmann::json info, model::parse_json(text, path.string()));
  if (!info.is_object()) return absl::DataLossError(absl::StrCat(path.string(), ": not a JSON object"));
  return info;
}

}  // namespace plm::trainer
