#include "trainer/train_run.h"

#include <algorithm>
#include <numeric>
#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/cuda/runtime.h"
#include "core/machine_peak.h"
#include "core/status_macros.h"
#include "data/sample_order.h"
#include "data/sft_dataset.h"
#include "distributed/nccl_communicator.h"
#include "distributed/process_groups.h"
#include "distributed/single_rank_communicator.h"
#include "distributed/status_agreement.h"
#include "model/lora.h"
#include "model/plm_model.h"
#include "model/weights/hf_names.h"
#include "model/whole_parameters.h"
#include "runtime/local_device.h"
#include "runtime/model_directory.h"
#include "trainer/checkpoint_io.h"
#include "trainer/data_parallel_step.h"
#include "trainer/hf_export.h"
#include "trainer/metrics_log.h"
#include "trainer/model_flops.h"
#include "trainer/peft_adapter.h"
#include "trainer/progress.h"
#include "trainer/step_loader.h"
#include "trainer/tied_embedding.h"
#include "trainer/training_checkpoint.h"

namespace plm::trainer {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Every rank's `local` status, agreed: the lowest failing rank's error on all of them.
absl::Status agree(distributed::Communicator& world, const absl::Status& local) {
  return distributed::agree_on_status(world, local, "rank", Device::cpu());
}

int64_t max_over(distributed::Communicator& world, int64_t value) {
  OwnedTensor t({1}, DType::kI64);
  t.data_as<int64_t>()[0] = value;
  world.all_reduce(t.view(), distributed::ReduceOp::kMax);
  return t.data_as<int64_t>()[0];
}

int64_t broadcast_from_rank0(distributed::Communicator& world, int64_t value) {
  OwnedTensor t({1}, DType::kI64);
  t.data_as<int64_t>()[0] = value;
  world.broadcast(t.view(), 0);
  return t.data_as<int64_t>()[0];
}

// LoRA: fresh adapters (peft's init from the seed), or lora.init's, whose config must be the run's.
absl::Status attach_adapters(const TrainConfig& config, model::PlmModel& model) {
  const model::LoraSpec spec = lora_spec(config.lora, config.seed);
  if (config.lora.init.empty()) return model.attach_lora(spec);
  const auto context = [&](const absl::Status& s) {
    return absl::Status(s.code(), absl::StrCat("lora.init (", config.where("lora.init"), "): ", s.message()));
  };
  const absl::StatusOr<model::LoraSpec> saved = read_peft_adapter_config(config.lora.init);
  if (!saved.ok()) return context(saved.status());
  const auto sorted = [](std::vector<std::string> v) {
    std::sort(v.begin(), v.end());
    return v;
  };
  if (saved->rank != spec.rank || saved->alpha != spec.alpha || saved->dora != spec.dora ||
      sorted(saved->targets) != sorted(spec.targets)) {
    return context(absl::FailedPreconditionError(absl::StrCat(
        "the adapter has r ", saved->rank, ", alpha ", saved->alpha, ", dora ", saved->dora, ", targets [",
        absl::StrJoin(saved->targets, ", "), "]; lora.* asks for r ", spec.rank, ", alpha ", spec.alpha, ", dora ",
        spec.dora, ", targets [", absl::StrJoin(spec.targets, ", "), "]")));
  }
  const absl::Status loaded = load_peft_adapter(config.lora.init, model);
  return loaded.ok() ? loaded : context(loaded);
}

// Freezing (trainer/README.md): by the HF module a parameter belongs to. A LoRA run trains its adapters only.
std::function<bool(const std::string&)> trainable_parameters(const TrainConfig& config) {
  if (config.lora.rank > 0) return model::is_lora_parameter;
  return [freeze = config.freeze](const std::string& name) {
    if (name.starts_with(model::kVisionPrefix)) return !freeze.vision;
    if (name.starts_with(model::kProjectorPrefix)) return !freeze.projector;
    return !freeze.llm;  // model.language_model.* and lm_head.weight
  };
}

absl::StatusOr<Device> training_device(const TrainConfig& config) {
  absl::StatusOr<Device> device = runtime::local_device(config.device);
  if (device.ok()) return device;
  return absl::Status(device.status().code(),
                      absl::StrCat("device: cuda (", config.where("device"), "): ", device.status().message()));
}

// What every rank loads before training: the model in its working dtype, the data and the sample order.
struct Setup {
  Device device;
  std::unique_ptr<model::PlmModel> model;
  std::unique_ptr<runtime::ModelDirectory> model_dir;  // the dataset keeps a reference to its tokenizer
  std::unique_ptr<data::SftDataset> dataset;
  std::optional<data::SampleOrder> order;
};

// The run's process groups (TP adjacent, then DP) and the groups the model and the step talk over: on GPUs NCCL
// communicators over the TP and DP groups (gradients and activations live on the device; the host groups keep the
// agreements), on the CPU the host groups; a group of one rank needs no communicator at all.
struct Groups {
  distributed::ProcessGroups host;
  std::unique_ptr<distributed::Communicator> nccl_tp, nccl_pp, nccl_dp;
  distributed::Communicator& tp() const { return pick(nccl_tp, *host.tp); }
  distributed::Communicator& pp() const { return pick(nccl_pp, *host.pp); }
  distributed::Communicator& dp() const { return pick(nccl_dp, *host.dp); }

 private:
  static distributed::Communicator& pick(const std::unique_ptr<distributed::Communicator>& nccl,
                                         distributed::Communicator& group) {
    if (group.size() == 1) return distributed::single_rank_group();
    return nccl ? *nccl : group;
  }
};

absl::StatusOr<Groups> make_groups(distributed::Communicator& world, const TrainLayout& layout, Device device) {
  PLM_ASSIGN_OR_RETURN(distributed::ProcessGroups host,
                       distributed::ProcessGroups::create(world.split(0, world.rank(), "world"), layout.dims.tp,
                                                          layout.dims.pp));
  Groups g{.host = std::move(host), .nccl_tp = nullptr, .nccl_pp = nullptr, .nccl_dp = nullptr};
  if (device.is_cuda() && g.host.tp->size() > 1) {
    g.nccl_tp = distributed::nccl_communicator(*g.host.tp, device.index, "tp");
  }
  if (device.is_cuda() && g.host.pp->size() > 1) {
    g.nccl_pp = distributed::nccl_communicator(*g.host.pp, device.index, "pp");
  }
  if (device.is_cuda() && g.host.dp->size() > 1) {
    g.nccl_dp = distributed::nccl_communicator(*g.host.dp, device.index, "dp");
  }
  return g;
}

// This rank's share of the model: its TP slice of its stage, the decoder layers split over the stages as
// layout.pp_layers says or else by cost (stage 0 also runs the vision tower, the last stage the LM head and loss:
// model/parallel.h).
absl::StatusOr<std::unique_ptr<model::PlmModel>> load_model(const TrainConfig& config, Device device,
                                                            const Groups& groups) {
  model::ModelParallel parallel{.tp = &groups.tp(), .pp = &groups.pp()};
  PLM_ASSIGN_OR_RETURN(const model::PlmConfig model_config, model::load_plm_config(config.model.string()));
  if (!config.layout.pp_layers.empty()) {
    const int layers = std::accumulate(config.layout.pp_layers.begin(), config.layout.pp_layers.end(), 0);
    if (layers != model_config.text.num_layers) {
      return absl::InvalidArgumentError(absl::StrCat("layout.pp_layers: the stages' counts add up to ", layers,
                                                     " decoder layers, but ", config.model.string(), " has ",
                                                     model_config.text.num_layers));
    }
    parallel.stage_layer_counts = config.layout.pp_layers;
  } else if (groups.host.pp->size() > 1) {
    // Every text token counted as labelled: the head's work on the last stage at its largest.
    const double media_fraction = config.layout.pp_media_fraction;
    parallel.stage_layer_counts = model::cost_aware_stage_layers(
        model_config, groups.host.pp->size(), {.media_fraction = media_fraction, .head_fraction = 1.0 - media_fraction});
  }
  return model::PlmModel::load(config.model.string(), device, parallel,
                               {.for_training = true, .cpu_compute = config.dtype});
}

absl::StatusOr<Setup> set_up(const TrainConfig& config, const TrainLayout& layout, Device device,
                             const Groups& groups) {
  Setup s;
  s.device = device;
  PLM_ASSIGN_OR_RETURN(s.model, load_model(config, device, groups));
  if (config.lora.rank > 0) PLM_RETURN_IF_ERROR(attach_adapters(config, *s.model));
  PLM_ASSIGN_OR_RETURN(runtime::ModelDirectory model_dir, runtime::open_model_directory(config.model));
  s.model_dir = std::make_unique<runtime::ModelDirectory>(std::move(model_dir));
  data::SftDataConfig data_config;
  data_config.labels = config.data.labels;
  if (config.data.num_frames.has_value()) data_config.media.video_sampling = {.num_frames = config.data.num_frames};
  PLM_ASSIGN_OR_RETURN(s.dataset, data::open_sft_dataset(config.data.train, s.model_dir->tokenizer,
                                                          s.model_dir->processor, data_config));
  PLM_ASSIGN_OR_RETURN(data::SampleOrder order, data::SampleOrder::create({.num_samples = s.dataset->size(),
                                                                           .global_batch = layout.global_batch,
                                                                           .shuffle = config.data.shuffle,
                                                                           .seed = config.seed}));
  s.order.emplace(std::move(order));
  return s;
}

nlohmann::json run_info(const TrainConfig& config) {
  return {{"model", config.model.string()},
          {"data.train", config.data.train.string()},
          {"freeze", {{"vision", config.freeze.vision}, {"projector", config.freeze.projector}, {"llm", config.freeze.llm}}},
          {"batch.global", config.batch.global.value_or(0)},
          {"lora", config.lora.rank == 0 ? nlohmann::json()
                                         : peft_adapter_config(lora_spec(config.lora, config.seed), config.model.string())},
          {"seed", config.seed}};
}

// Rank 0 picks the checkpoint to resume from (every rank then reads it): the latest complete one, or none.
absl::StatusOr<std::optional<std::filesystem::path>> find_resume_checkpoint(const TrainConfig& config,
                                                                           distributed::Communicator& world,
                                                                           std::ostream* log) {
  int64_t step = 0;
  absl::Status local;
  if (world.rank() == 0) {
    absl::StatusOr<CheckpointScan> scan = latest_complete_checkpoint(config.output_dir);
    if (!scan.ok()) {
      local = scan.status();
    } else {
      if (log != nullptr) {
        for (const std::string& why : scan->ignored) *log << "ignoring incomplete checkpoint " << why << "\n";
      }
      if (scan->latest.has_value()) step = scan->latest->marker.step;
    }
  }
  PLM_RETURN_IF_ERROR(agree(world, local));
  step = broadcast_from_rank0(world, step);
  if (step == 0) {
    if (config.resume) {
      return absl::NotFoundError(absl::StrCat("resume (", config.where("resume"), "): ",
                                              checkpoints_dir(config.output_dir).string(),
                                              " holds no complete checkpoint to resume from"));
    }
    return std::optional<std::filesystem::path>();
  }
  return std::optional<std::filesystem::path>(checkpoints_dir(config.output_dir) / step_dir_name(step));
}

absl::Status check_resumable(const TrainConfig& config, const TrainLayout& layout, const TrainState& state,
                             const std::filesystem::path& dir) {
  if (state.step > config.steps) {
    return absl::FailedPreconditionError(absl::StrCat(dir.string(), " is at step ", state.step, ", beyond steps (",
                                                      config.where("steps"), ") = ", config.steps));
  }
  if (state.data_position != state.step * layout.global_batch) {
    return absl::FailedPreconditionError(absl::StrCat(
        dir.string(), ": the run consumed ", state.data_position, " samples in ", state.step,
        " steps, which batch.global (", config.where("batch.global"), ") = ", layout.global_batch,
        " does not give; resume with the batch.global the checkpoint was trained with"));
  }
  return absl::OkStatus();
}

// output_dir/final-hf (full fine-tuning, or LoRA with lora.merge) and output_dir/final-adapter (LoRA). gathered:
// the whole parameters of a tensor-parallel model (model/whole_parameters.h); a rank holding all of the model
// exports its own tensors.
absl::Status write_final_outputs(const TrainConfig& config, model::PlmModel& model,
                                 const std::vector<model::WholeParameter>& gathered, std::ostream* log) {
  std::vector<std::filesystem::path> written;
  if (config.lora.rank > 0) {
    written.push_back(config.output_dir / "final-adapter");
    PLM_RETURN_IF_ERROR(write_peft_adapter(written.back(), model, config.model.string()));
  }
  if (config.lora.rank == 0 || config.lora.merge) {
    written.push_back(config.output_dir / "final-hf");
    const std::optional<DType> dtype = export_dtype_value(config.export_dtype);
    PLM_RETURN_IF_ERROR(gathered.empty()
                            ? export_hf(config.model, model, written.back(), dtype)
                            : export_hf(config.model, model.config(), gathered, written.back(), dtype));
  }
  if (log != nullptr) {
    for (const std::filesystem::path& p : written) *log << "wrote " << p.string() << "\n";
  }
  return absl::OkStatus();
}

// Rank 0's stage-0 times (the modality skew: only micro-batches with media run the vision tower).
StepMetrics::Stage0 stage0_metrics(const PipelineStats& p) {
  const auto mean = [](double total, int n) { return n > 0 ? std::optional(total / n) : std::nullopt; };
  return {.media_s = mean(p.media_compute_s, p.media_micro), .text_s = mean(p.text_compute_s, p.text_micro),
          .transfer_s = p.transfer_s};
}

// The MFU's denominator: the device's peak in the dtype the GEMMs run in (CPU: measured, f32 FMA or vdpbf16ps).
double peak_flops_per_s(Device device, DType cpu_compute) {
  if (device.is_cuda()) return cuda_peak(device.index).flops_per_s;
  const MachinePeak peak = cpu_compute_peak();
  return cpu_compute == DType::kBF16 ? peak.bf16_flops_per_s : peak.flops_per_s;
}

}  // namespace

absl::StatusOr<TrainRunResult> run_training(const TrainConfig& config, distributed::Communicator& world,
                                            const TrainRunHooks& hooks) {
  PLM_ASSIGN_OR_RETURN(const TrainLayout layout, validate_layout(config, world.size()));
  std::ostream* log = world.rank() == 0 ? hooks.log : nullptr;
  const absl::StatusOr<Device> device = training_device(config);
  PLM_RETURN_IF_ERROR(agree(world, device.status()));
  PLM_ASSIGN_OR_RETURN(const Groups groups, make_groups(world, layout, *device));
  absl::StatusOr<Setup> setup = set_up(config, layout, *device, groups);
  PLM_RETURN_IF_ERROR(agree(world, setup.status()));
  model::PlmModel& model = *setup->model;
  const int dp_rank = groups.host.coords.dp_index;

  const DataParallelConfig step_config = {
      .zero_stage = layout.zero,
      .adamw = {.beta1 = static_cast<float>(config.optimizer.betas[0]),
                .beta2 = static_cast<float>(config.optimizer.betas[1]),
                .eps = static_cast<float>(config.optimizer.eps),
                .weight_decay = static_cast<float>(config.optimizer.weight_decay)},
      .grad_clip = static_cast<float>(config.optimizer.grad_clip),
      .recompute = config.recompute};
  // A tied head under pipeline parallelism: its two copies' gradients are summed (trainer/tied_embedding.h).
  const bool tied_copies = max_over(world, model.decoder().weights().lm_head_copies_embedding) != 0;
  const std::unique_ptr<distributed::Communicator> tied_embedding =
      tied_embedding_group(world, layout.dims, tied_copies);
  // On GPUs the gradients live on the device: an NCCL communicator over the pair (collective over the pair).
  std::unique_ptr<distributed::Communicator> tied_embedding_nccl;
  if (tied_embedding != nullptr && tied_embedding->size() > 1 && device->is_cuda()) {
    tied_embedding_nccl = distributed::nccl_communicator(*tied_embedding, device->index, "tied_embedding");
  }
  DataParallelStep dp_step(model, groups.dp(), step_config, trainable_parameters(config),
                           tied_embedding_nccl ? tied_embedding_nccl.get() : tied_embedding.get());

  TrainState state{.rng_seed = config.seed};
  TrainRunResult result;
  PLM_ASSIGN_OR_RETURN(const std::optional<std::filesystem::path> resume_dir,
                       find_resume_checkpoint(config, world, log));
  if (resume_dir.has_value()) {
    absl::StatusOr<TrainState> restored = restore_training_checkpoint(*resume_dir, dp_step);
    absl::Status ok = restored.status();
    if (ok.ok()) ok = check_resumable(config, layout, *restored, *resume_dir);
    PLM_RETURN_IF_ERROR(agree(world, ok));
    state = *restored;
    if (log != nullptr) *log << "resumed from " << resume_dir->string() << " (step " << state.step << ")\n";
  }
  result.first_step = state.step + 1;

  std::unique_ptr<MetricsLog> metrics;
  if (world.rank() == 0) {
    absl::StatusOr<std::unique_ptr<MetricsLog>> opened = MetricsLog::open(config.output_dir, state.step);
    PLM_RETURN_IF_ERROR(agree(world, opened.status()));
    metrics = std::move(*opened);
  } else {
    PLM_RETURN_IF_ERROR(agree(world, absl::OkStatus()));
  }

  const model::PlmConfig& model_config = model.config();
  const TrainedParts trained = {.vision = !config.freeze.vision, .projector = !config.freeze.projector,
                                .llm = !config.freeze.llm};
  StepLoader loader(*setup->dataset, std::move(*setup->order),
                    {.dp_rank = dp_rank,
                     .dp_size = layout.dims.dp,
                     .micro_batches_per_rank = layout.accumulation_steps,
                     .tile_cost = tile_cost_in_tokens(model_config),
                     .seed = config.seed,
                     .device = setup->device});
  const LrSchedule schedule = config.lr_schedule();
  const double peak = peak_flops_per_s(setup->device, config.dtype) * world.size();
  const CheckpointSaveOptions save_options = {
      .layout = {.tp = layout.dims.tp, .pp = layout.dims.pp, .dp = layout.dims.dp, .zero = layout.zero},
      .keep = config.checkpoint.keep,
      .run_info = run_info(config)};
  if (log != nullptr) {
    *log << "training " << dp_step.num_trainable() << " parameters on rank 0 (its TP shard of its stage) on "
         << world.size() << " rank(s) (tp "
         << layout.dims.tp << " x pp " << layout.dims.pp << " x dp " << layout.dims.dp << "), steps "
         << result.first_step << ".." << config.steps << ", " << layout.global_batch << " samples per step ("
         << layout.accumulation_steps << " micro-batches per rank)\n";
  }

  const Clock::time_point run_start = Clock::now();
  const double elapsed_before = state.elapsed_s;
  for (int64_t step = result.first_step; step <= config.steps; ++step) {
    const Clock::time_point step_start = Clock::now();
    absl::StatusOr<StepData> data = loader.load(step, step < config.steps);
    PLM_RETURN_IF_ERROR(agree(world, data.status()));
    std::vector<model::TrainingBatch> batches;
    for (const MicroBatch& mb : data->micro_batches) batches.push_back(mb.batch);
    const double lr = schedule.at(step);
    PLM_ASSIGN_OR_RETURN(const StepStats stats, dp_step.step(batches, static_cast<float>(lr)));
    const double step_s = seconds_since(step_start);

    state.step = step;
    state.lr_step = step;
    state.data_position = step * layout.global_batch;
    state.elapsed_s = elapsed_before + seconds_since(run_start);
    result.last_step = step;
    result.final_loss = stats.loss;
    if (metrics != nullptr) {
      const StepMetrics m = {
          .step = step,
          .loss = stats.loss,
          .grad_norm = stats.grad_norm,
          .lr = lr,
          .tokens = stats.tokens,
          .tokens_per_s = static_cast<double>(stats.tokens) / step_s,
          .mfu = training_step_flops(model_config, trained, data->sequence_lengths, data->vision_tiles) /
                 (step_s * peak),
          .elapsed_s = state.elapsed_s,
          .stage0 = layout.dims.pp > 1 ? std::optional(stage0_metrics(stats.pipeline)) : std::nullopt};
      PLM_RETURN_IF_ERROR(metrics->append(m));
      if (log != nullptr && (step % config.log_every == 0 || step == config.steps)) {
        const int64_t done = step - result.first_step + 1;
        *log << progress_line(m, config.steps, eta_seconds(done, seconds_since(run_start), config.steps - step))
             << "\n" << std::flush;
      }
    }
    const bool stop = max_over(world, hooks.stop_requested ? hooks.stop_requested() : 0) != 0;
    const bool every = config.checkpoint.every > 0 && step % config.checkpoint.every == 0;
    if (stop || every || step == config.steps) {
      PLM_ASSIGN_OR_RETURN(const std::filesystem::path saved,
                           save_training_checkpoint(config.output_dir, state, dp_step, world, save_options, log));
      if (log != nullptr) *log << "saved " << saved.string() << "\n" << std::flush;
    }
    if (stop && step < config.steps) {
      result.stopped = true;
      if (log != nullptr) *log << "stop requested: stopped after step " << step << "\n";
      break;
    }
  }

  // final-hf of a tensor- or pipeline-parallel model: its first DP replica gathers the whole parameters to rank 0.
  const bool split = model.parallel().tp_size() > 1 || model.parallel().pp_size() > 1;
  std::vector<model::WholeParameter> gathered;
  if (!result.stopped && split && dp_rank == 0) {
    gathered = model::gather_whole_parameters(model, model.weights());
    if (model.parallel().tp_rank() == 0) {
      gathered = model::gather_stages(*groups.host.pp, Device::cpu(), std::move(gathered));
    }
  }
  absl::Status finished;
  if (world.rank() == 0) {
    finished = metrics->write_plot();
    if (finished.ok() && !result.stopped) finished = write_final_outputs(config, model, gathered, log);
  }
  PLM_RETURN_IF_ERROR(agree(world, finished));
  return result;
}

}  // namespace plm::trainer
