#include "trainer/training_checkpoint.h"

#include <unistd.h>

#include <algorithm>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/status_macros.h"
#include "distributed/status_agreement.h"
#include "model/json_fields.h"
#include "model/weights/hf_names.h"
#include "model/whole_parameters.h"
#include "model/weights/safetensors.h"
#include "model/weights/weight_store.h"

namespace plm::trainer {

namespace {

constexpr const char* kMaster = "master";
constexpr const char* kExpAvg = "exp_avg";
constexpr const char* kExpAvgSq = "exp_avg_sq";

// Whether this rank holds an optimizer shard no other rank of its TP index holds (ZeRO-0 replicates it over DP).
bool writes_optimizer_shard(const DataParallelStep& step) { return step.dp().rank() == 0 || step.zero_stage() > 0; }

// The flat vector's entries with their tensor slices (the optimizer files' "layout" metadata).
std::string flat_layout_json(const DataParallelStep& step) {
  nlohmann::json entries = nlohmann::json::array();
  for (const model::FlatEntry& e : step.params().entries()) {
    const model::TensorSlice& slice = step.model().tensor_slice(e.name);
    entries.push_back({{"name", e.name},
                       {"offset", e.offset},
                       {"shape", std::vector<int64_t>(e.shape.begin(), e.shape.end())},
                       {"slice", {{"dim", slice.dim}, {"parts", slice.parts}, {"num_parts", slice.num_parts}}}});
  }
  return entries.dump();
}

// params: the whole trainable parameters (rank 0).
absl::Status write_rank_files(CheckpointWriter& writer, const TrainState& state, const DataParallelStep& step,
                              int rank, const std::vector<model::WholeParameter>& params,
                              const nlohmann::json& run_info) {
  if (rank == 0) {
    PLM_RETURN_IF_ERROR(writer.write_json(kRunInfoFile, run_info));
    std::vector<model::NamedTensor> named;
    for (const model::WholeParameter& p : params) named.push_back({p.name, p.value.view()});
    PLM_RETURN_IF_ERROR(writer.write_tensors(rank_file_name(ShardKind::kModel, 0), named));
    PLM_RETURN_IF_ERROR(writer.write_json(kTrainStateFile, train_state_to_json(state)));
  }
  if (writes_optimizer_shard(step)) {
    const ShardedAdamW& adam = step.optimizer();
    const OwnedTensor master = to_device(adam.master(), Device::cpu());
    const OwnedTensor exp_avg = to_device(adam.exp_avg(), Device::cpu());
    const OwnedTensor exp_avg_sq = to_device(adam.exp_avg_sq(), Device::cpu());
    const model::ModelParallel& parallel = step.model().parallel();
    const std::map<std::string, std::string> metadata = {
        {"begin", absl::StrCat(adam.shard().begin)},
        {"end", absl::StrCat(adam.shard().end)},
        {"numel", absl::StrCat(step.params().numel())},
        {"steps", absl::StrCat(adam.steps_taken())},
        {"tp_rank", absl::StrCat(parallel.tp_rank())},
        {"tp_size", absl::StrCat(parallel.tp_size())},
        {"layout", flat_layout_json(step)}};
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

// fallback: the value when the key is absent (a checkpoint written before the key existed); none: required.
absl::StatusOr<int64_t> metadata_int(const model::SafetensorsFile& file, const std::string& key,
                                     const std::filesystem::path& path, std::optional<int64_t> fallback = {}) {
  const auto it = file.metadata().find(key);
  if (it == file.metadata().end() && fallback.has_value()) return *fallback;
  int64_t value = 0;
  if (it == file.metadata().end() || !absl::SimpleAtoi(it->second, &value)) {
    return absl::DataLossError(absl::StrCat(path.string(), ": metadata '", key, "' is missing or not an integer"));
  }
  return value;
}

absl::Status restore_parameters(const std::filesystem::path& dir, DataParallelStep& step) {
  std::map<std::string, ParameterTarget> targets;
  const Tensor flat = step.params().flat();
  for (const model::FlatEntry& e : step.params().entries()) {
    targets[e.name] = {flat.slice(0, e.offset, e.offset + e.numel).reshape(e.shape), step.model().tensor_slice(e.name)};
  }
  std::set<std::string> held_elsewhere;
  for (const model::ExpectedTensor& t : model::expected_tensors(step.model().config())) {
    if (!step.model().holds(t.name)) held_elsewhere.insert(t.name);
  }
  return read_checkpoint_parameters(dir, targets, /*every_target_saved=*/true, held_elsewhere);
}

absl::Status restore_optimizer(const std::filesystem::path& dir, const CheckpointMarker& marker,
                               DataParallelStep& step) {
  ShardedAdamW& adam = step.optimizer();
  const Range mine = adam.shard();
  const model::ModelParallel& parallel = step.model().parallel();
  int64_t covered = 0, steps = -1;
  for (const auto& [name, digest] : marker.files) {
    if (!name.starts_with("optim-rank")) continue;
    const std::filesystem::path path = dir / name;
    PLM_ASSIGN_OR_RETURN(const std::unique_ptr<model::SafetensorsFile> file,
                         model::SafetensorsFile::open(path.string()));
    PLM_ASSIGN_OR_RETURN(const int64_t tp_rank, metadata_int(*file, "tp_rank", path, 0));
    if (tp_rank != parallel.tp_rank()) continue;  // another shard of the model: another flat vector
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

absl::Status read_checkpoint_parameters(const std::filesystem::path& dir,
                                        const std::map<std::string, ParameterTarget>& targets, bool every_target_saved,
                                        const std::set<std::string>& held_elsewhere) {
  const std::filesystem::path path = dir / rank_file_name(ShardKind::kModel, 0);
  PLM_ASSIGN_OR_RETURN(const model::WeightStore store, model::WeightStore::open(path.string()));
  std::vector<std::string> unknown, missing;
  for (const std::string& name : store.names()) {
    if (!targets.contains(name) && !held_elsewhere.contains(name)) unknown.push_back(name);
  }
  for (const auto& [name, target] : targets) {
    if (!store.contains(name)) {
      missing.push_back(name);
      continue;
    }
    PLM_ASSIGN_OR_RETURN(const OwnedTensor value, store.load(name, target.value.dtype()));
    const Shape whole = target.slice.whole_shape(target.value.shape());
    if (value.numel() != whole.numel()) {
      return absl::DataLossError(absl::StrCat(path.string(), ": ", name, " has ", value.numel(),
                                              " elements, the model's parameter ", whole.numel()));
    }
    model::take_slice(target.value, value.view().reshape(whole), target.slice);
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
  // Collective over the first DP replica's TP group, before anything that can fail on one rank only.
  std::vector<model::WholeParameter> params;
  if (step.dp().rank() == 0) params = model::gather_whole_parameters(step.model(), step.params().views());
  absl::Status local = [&]() -> absl::Status {
    PLM_ASSIGN_OR_RETURN(CheckpointWriter writer,
                         CheckpointWriter::begin(output_dir, state.step, world.rank(), writer_pid));
    return write_rank_files(writer, state, step, world.rank(), params, options.run_info);
  }();
  PLM_RETURN_IF_ERROR(distributed::agree_on_status(world, local, "rank", Device::cpu()));
  absl::StatusOr<std::filesystem::path> committed = std::filesystem::path();
  if (world.rank() == 0) {
    committed = commit_checkpoint(output_dir, state.step, writer_pid, options.layout);
    if (committed.ok()) {
      absl::StatusOr<std::vector<std::filesystem::path>> pruned = prune_checkpoints(output_dir, options.keep);
      if (!pruned.ok()) {
        committed = pruned.status();
      } else if (log != nullptr) {
        for (const std::filesystem::path& p : *pruned) *log << "removed old checkpoint " << p.string() << "\n";
      }
    }
  }
  PLM_RETURN_IF_ERROR(distributed::agree_on_status(world, committed.status(), "rank", Device::cpu()));
  return checkpoints_dir(output_dir) / step_dir_name(state.step);
}

absl::StatusOr<TrainState> restore_training_checkpoint(const std::filesystem::path& dir, DataParallelStep& step) {
  PLM_ASSIGN_OR_RETURN(const CheckpointMarker marker, read_checkpoint_marker(dir));
  PLM_RETURN_IF_ERROR(verify_checkpoint_files(dir, marker, Verify::kSizesAndCrcs));
  const int tp = step.model().parallel().tp_size();
  if (marker.layout.tp != tp) {
    return absl::FailedPreconditionError(absl::StrCat(dir.string(), " was written at layout.tp ", marker.layout.tp,
                                                      "; resuming at layout.tp ", tp, " needs its optimizer state "
                                                      "resharded, which is not supported yet"));
  }
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
