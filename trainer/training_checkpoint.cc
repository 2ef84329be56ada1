#include "trainer/training_checkpoint.h"

#include <unistd.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/status_macros.h"
#include "distributed/status_agreement.h"
#include "model/json_fields.h"
#include "model/weights/hf_names.h"
#include "model/whole_parameters.h"
#include "trainer/optimizer_state_reader.h"
#include "model/weights/safetensors.h"
#include "model/weights/weight_store.h"

namespace plm::trainer {

namespace {

// Whether this rank holds an optimizer shard no other rank of its TP index holds (ZeRO-0 replicates it over DP).
bool writes_optimizer_shard(const DataParallelStep& step) { return step.dp().rank() == 0 || step.zero_stage() > 0; }

// The flat vector's entries by name: (offset, numel).
std::map<std::string, std::pair<int64_t, int64_t>> flat_layout(const DataParallelStep& step) {
  std::map<std::string, std::pair<int64_t, int64_t>> layout;
  for (const model::FlatEntry& e : step.params().entries()) layout[e.name] = {e.offset, e.numel};
  return layout;
}

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
        {"pp_rank", absl::StrCat(parallel.pp_rank())},
        {"pp_size", absl::StrCat(parallel.pp_size())},
        {"layout", flat_layout_json(step)}};
    PLM_RETURN_IF_ERROR(writer.write_tensors(
        rank_file_name(ShardKind::kOptimizer, rank),
        {{kMasterState, master.view()}, {kExpAvgState, exp_avg.view()}, {kExpAvgSqState, exp_avg_sq.view()}},
        metadata));
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

// This rank's shard of the optimizer state: the same range of the same TP rank's vector when the checkpoint was
// written at this TP degree (any DP size, any ZeRO stage); otherwise each parameter's state is put together whole
// from the saving TP ranks' slices and this rank takes its own slice of it.
absl::Status restore_optimizer(const std::filesystem::path& dir, const CheckpointMarker& marker,
                               DataParallelStep& step) {
  PLM_ASSIGN_OR_RETURN(const OptimizerStateReader reader, OptimizerStateReader::open(dir, marker));
  ShardedAdamW& adam = step.optimizer();
  const Range mine = adam.shard();
  const std::pair<const char*, Tensor> states[] = {
      {kMasterState, adam.master()}, {kExpAvgState, adam.exp_avg()}, {kExpAvgSqState, adam.exp_avg_sq()}};
  const model::ModelParallel& parallel = step.model().parallel();
  const OptimizerStateReader::Part part = {.pp_rank = parallel.pp_rank(), .tp_rank = parallel.tp_rank()};
  if (reader.tp_size() == parallel.tp_size() && reader.pp_size() == parallel.pp_size() &&
      reader.same_layout(part, flat_layout(step))) {
    for (const auto& [state, target] : states) PLM_RETURN_IF_ERROR(reader.read_range(part, state, mine.begin, target));
  } else {
    for (const model::FlatEntry& e : step.params().entries()) {
      const int64_t from = std::max(e.offset, mine.begin), to = std::min(e.offset + e.numel, mine.end);
      if (from >= to) continue;
      const model::TensorSlice& slice = step.model().tensor_slice(e.name);
      OwnedTensor whole(slice.whole_shape(e.shape), DType::kF32), part(e.shape, DType::kF32);
      for (const auto& [state, target] : states) {
        PLM_RETURN_IF_ERROR(reader.read_whole(e.name, state, whole));
        model::take_slice(part, whole, slice);
        copy_tensor(target.slice(0, from - mine.begin, to - mine.begin),
                    part.view().reshape({e.numel}).slice(0, from - e.offset, to - e.offset));
      }
    }
  }
  adam.set_steps_taken(reader.steps());
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
  // Collective over the first DP replica's TP groups, then over its TP rank 0's pipeline, before anything that can
  // fail on one rank only.
  std::vector<model::WholeParameter> params;
  const model::ModelParallel& parallel = step.model().parallel();
  if (step.dp().rank() == 0) {
    params = model::gather_whole_parameters(step.model(), step.params().views());
    if (parallel.tp_rank() == 0) {
      params = model::gather_stages(parallel.pp_group(), step.model().device(), std::move(params));
    }
  }
  absl::Status saved = [&]() -> absl::Status {
    absl::Status local = [&]() -> absl::Status {
      PLM_ASSIGN_OR_RETURN(CheckpointWriter writer,
                           CheckpointWriter::begin(output_dir, state.step, world.rank(), writer_pid));
      return write_rank_files(writer, state, step, world.rank(), params, options.run_info);
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
