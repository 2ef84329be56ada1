// `plm plan`: which TP x PP x DP layout to train (or serve) a PLM with on N devices — per-device memory,
// step time and traffic of every layout from the model's config.json alone (plan/planner.h), the best one's
// `layout.*` overrides and sbatch line. Exit status 0 when a layout fits, 1 when none does or on an error.
#include <cstdio>
#include <memory>
#include <optional>
#include <string>

#include "apps/command.h"
#include "model/config.h"
#include "plan/plan_report.h"
#include "plan/planner.h"

namespace plm::apps {

namespace {

struct PlanOptions {
  std::string model_dir;
  std::string task = "train";
  std::string hardware = "h100";
  int gpus = 1;
  int gpus_per_node = 8;
  uint64_t gpu_mem = 0;  // 0: the hardware's
  double gpu_flops = 0.0, efficiency = 0.0, intra_node_bw = 0.0, inter_node_bw = 0.0, memory_bw = 0.0;
  std::optional<uint64_t> runtime_bytes;
  int64_t seq_len = 2048;
  int micro_batch = 1;
  int64_t global_batch = 0;
  int tiles = 0;
  int zero = 1;
  std::string recompute = "auto";
  int64_t max_batch_tokens = 2048;
  std::optional<int> tp, pp;
  bool json = false;
  bool all = false;
};

int fail(const std::string& message) {
  std::fprintf(stderr, "plm plan: %s\n", message.c_str());
  return 1;
}

int run_plan(const PlanOptions& o) {
  const absl::StatusOr<model::PlmConfig> config = model::load_plm_config(o.model_dir);
  if (!config.ok()) return fail(std::string(config.status().message()));
  absl::StatusOr<plan::Hardware> hardware = plan::hardware_preset(o.hardware);
  if (!hardware.ok()) return fail(std::string(hardware.status().message()));
  if (o.gpu_mem > 0) hardware->memory_bytes = static_cast<int64_t>(o.gpu_mem);
  if (o.gpu_flops > 0) hardware->peak_flops = o.gpu_flops;
  if (o.efficiency > 0) hardware->efficiency = o.efficiency;
  if (o.intra_node_bw > 0) hardware->intra_node_bytes_per_s = o.intra_node_bw;
  if (o.inter_node_bw > 0) hardware->inter_node_bytes_per_s = o.inter_node_bw;
  if (o.memory_bw > 0) hardware->memory_bytes_per_s = o.memory_bw;
  if (o.runtime_bytes) hardware->runtime_bytes = static_cast<int64_t>(*o.runtime_bytes);

  plan::PlanRequest request{.task = o.task == "serve" ? plan::Task::kServe : plan::Task::kTrain,
                            .num_devices = o.gpus,
                            .devices_per_node = o.gpus_per_node,
                            .hardware = *hardware,
                            .seq_len = o.seq_len,
                            .micro_batch = o.micro_batch,
                            .global_batch = o.global_batch,
                            .tiles_per_sample = o.tiles,
                            .zero_stage = o.zero,
                            .serve_step_tokens = o.max_batch_tokens,
                            .only_tp = o.tp,
                            .only_pp = o.pp};
  for (const model::Recompute r : {model::Recompute::kNone, model::Recompute::kSelective, model::Recompute::kFull}) {
    if (model::recompute_text(r) == o.recompute) request.recompute = r;
  }
  const absl::StatusOr<std::vector<plan::LayoutPlan>> plans = plan::plan_layouts(*config, request);
  if (!plans.ok()) return fail(std::string(plans.status().message()));
  if (o.json) {
    std::printf("%s\n", plan::plan_json(*config, request, o.model_dir, *plans).dump(2).c_str());
  } else {
    const int rows = o.all ? static_cast<int>(plans->size()) : 8;
    std::fputs(plan::plan_text(*config, request, o.model_dir, *plans, rows).c_str(), stdout);
  }
  const bool found = !plans->empty() && plans->front().valid.ok() && plans->front().fits;
  return found ? 0 : 1;
}

}  // namespace

void add_plan_command(CLI::App& app, CommandMain* selected) {
  auto o = std::make_shared<PlanOptions>();
  CLI::App* cmd = app.add_subcommand("plan", "Rank the TP x PP x DP layouts for training or serving a PLM on N GPUs");
  cmd->add_option("--model", o->model_dir, "PLM model directory (only its config.json is read)")->required();
  cmd->add_option("--gpus", o->gpus, "Devices in the job (default 1)")->check(CLI::PositiveNumber);
  cmd->add_option("--gpus-per-node", o->gpus_per_node, "Devices per node (default 8)")->check(CLI::PositiveNumber);
  cmd->add_option("--gpu-mem", o->gpu_mem, "Memory per device, e.g. 80G (default: the hardware's)")
      ->transform(CLI::AsSizeValue(false));
  cmd->add_option("--hardware", o->hardware, "h100 (default), h200, a100, or cpu (plm's f32 CPU backend)")
      ->check(CLI::IsMember({"h100", "h200", "a100", "cpu"}));
  cmd->add_option("--task", o->task, "train (default) or serve")->check(CLI::IsMember({"train", "serve"}));
  cmd->add_option("--seq-len", o->seq_len, "Tokens per sequence, image placeholders included (default 2048); "
                                           "serve: prompt + reply")->check(CLI::PositiveNumber);
  cmd->add_option("--micro-batch", o->micro_batch, "Sequences per micro-batch (default 1); serve: sequences "
                                                   "decoding together per replica")->check(CLI::PositiveNumber);
  cmd->add_option("--global-batch", o->global_batch, "Sequences per optimizer step (default: one micro-batch per device)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--tiles", o->tiles, "Image tiles + video frames per sequence (default 0)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--zero", o->zero, "ZeRO stage 0, 1 (default) or 2")->check(CLI::Range(0, 2));
  cmd->add_option("--recompute", o->recompute, "none, selective, full, or auto (default: the cheapest that fits)")
      ->check(CLI::IsMember({"auto", "none", "selective", "full"}));
  cmd->add_option("--max-batch-tokens", o->max_batch_tokens, "serve: tokens per engine step (default 2048)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--tp", o->tp, "Only layouts with this tensor-parallel degree")->check(CLI::PositiveNumber);
  cmd->add_option("--pp", o->pp, "Only layouts with this pipeline-parallel degree")->check(CLI::PositiveNumber);
  cmd->add_option("--gpu-flops", o->gpu_flops, "Dense matmul peak per device, FLOP/s")->check(CLI::PositiveNumber);
  cmd->add_option("--efficiency", o->efficiency, "Fraction of the peak the GEMMs reach")->check(CLI::Range(0.01, 1.0));
  cmd->add_option("--intra-node-bw", o->intra_node_bw, "Bytes/s per device inside a node")->check(CLI::PositiveNumber);
  cmd->add_option("--inter-node-bw", o->inter_node_bw, "Bytes/s per device between nodes")->check(CLI::PositiveNumber);
  cmd->add_option("--memory-bw", o->memory_bw, "Device memory bytes/s (serve: decoding)")->check(CLI::PositiveNumber);
  cmd->add_option("--runtime-bytes", o->runtime_bytes, "Reserve per device, e.g. 2G (default: the hardware's)")
      ->transform(CLI::AsSizeValue(false));
  cmd->add_flag("--json", o->json, "Print every layout as JSON");
  cmd->add_flag("--all", o->all, "List every layout in the ranking");
  cmd->callback([selected, o] { *selected = [o] { return run_plan(*o); }; });
}

}  // namespace plm::apps
