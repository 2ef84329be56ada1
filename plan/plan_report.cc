#include "plan/plan_report.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/check.h"

namespace plm::plan {

namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
constexpr int64_t kMiB = int64_t{1} << 20;

// GiB from 1 GiB up, MiB below.
std::string gib(int64_t bytes) {
  const double b = static_cast<double>(bytes);
  return b >= kGiB ? absl::StrFormat("%.1f GiB", b / kGiB) : absl::StrFormat("%.1f MiB", b / (1024.0 * 1024.0));
}
std::string gb(double bytes) { return absl::StrFormat("%.2f GB", bytes / 1e9); }

std::string recompute_name(model::Recompute r) {
  const std::string_view text = model::recompute_text(r);
  return std::string(text.data(), text.size());
}

std::string task_name(Task task) {
  switch (task) {
    case Task::kTrain: return "train";
    case Task::kServe: return "serve";
  }
  PLM_CHECK(false) << "unhandled Task " << static_cast<int>(task);
  return {};
}

// plm serve (and slurm/serve.sbatch) runs pp = 1, a replica per --tp tasks: the fastest fitting plan it can run, if any.
const LayoutPlan* runnable_serving(const std::vector<LayoutPlan>& plans) {
  for (const LayoutPlan& p : plans) {
    if (p.valid.ok() && p.fits && p.layout.pp == 1) return &p;
  }
  return nullptr;
}

int nodes(const PlanRequest& r) { return (r.num_devices + r.devices_per_node - 1) / r.devices_per_node; }
int tasks_per_node(const PlanRequest& r) { return std::min(r.num_devices, r.devices_per_node); }

nlohmann::ordered_json traffic_json(const AxisTraffic& a) {
  return {{"payload_bytes", a.payload}, {"wire_bytes", a.wire_bytes}};
}

nlohmann::ordered_json layout_json(const PlanRequest& request, const LayoutPlan& p) {
  nlohmann::ordered_json j = {{"tp", p.layout.tp}, {"pp", p.layout.pp}, {"dp", p.layout.dp},
                              {"valid", p.valid.ok()}};
  if (!p.valid.ok()) {
    j["reason"] = std::string(p.valid.message());
    return j;
  }
  j["fits"] = p.fits;
  j["peak_bytes"] = p.peak_bytes;
  j["tokens_per_s"] = p.tokens_per_s;
  if (request.task == Task::kServe) {
    const ServingMemory& m = p.serving_memory;
    j["memory"] = {{"stage", m.stage.stage}, {"parameters", m.stage.total()}, {"weights", m.weights},
                   {"kv_cache", m.kv_cache}, {"kv_bytes_per_token", m.kv_bytes_per_token},
                   {"activations", m.activations}, {"runtime", m.runtime}, {"total", m.total()}};
    j["kv_cache_budget"] = p.kv_cache_budget;
    j["decode_step_s"] = p.decode_step_s;
    return j;
  }
  const TrainingMemory& m = p.memory;
  const ActivationMemory& a = m.activation_parts;
  j["recompute"] = recompute_name(p.training.recompute);
  j["micro_batches"] = p.training.num_micro_batches;
  j["memory"] = {{"stage", m.stage.stage}, {"parameters", m.stage.total()}, {"in_flight", m.in_flight},
                 {"weights", m.weights}, {"gradients", m.gradients}, {"optimizer", m.optimizer},
                 {"activations", m.activations}, {"buffers", m.buffers}, {"runtime", m.runtime},
                 {"total", m.total()},
                 {"activation_parts", {{"decoder_saved", a.decoder_saved}, {"media_saved", a.media_saved},
                                       {"head_saved", a.head_saved}, {"workspace", a.workspace},
                                       {"backward_scratch", a.backward_scratch},
                                       {"loss_logits", a.loss_logits}}}};
  j["traffic"] = {{"tp", traffic_json(p.traffic.tp)}, {"pp", traffic_json(p.traffic.pp)},
                  {"dp", traffic_json(p.traffic.dp)}};
  const StepTime& t = p.time;
  j["time"] = {{"step_s", t.total_s()}, {"compute_s", t.compute_s}, {"bubble_s", t.bubble_s}, {"tp_s", t.tp_s},
               {"pp_s", t.pp_s}, {"dp_s", t.dp_s}, {"dp_exposed_s", t.dp_exposed_s},
               {"mfu", t.model_flops / (request.num_devices * request.hardware.peak_flops * t.total_s())}};
  return j;
}

std::string ranking_row(const PlanRequest& request, const LayoutPlan& p, int rank) {
  const std::string layout = p.layout.to_string();
  if (!p.valid.ok()) return absl::StrFormat("  %4s  %-16s invalid: %s\n", "-", layout, p.valid.message());
  const std::string position = p.fits ? absl::StrCat(rank) : "-";
  if (request.task == Task::kServe) {
    return absl::StrFormat("  %4s  %-16s %10s  %9.0f tok/s  KV budget %s%s\n", position, layout, gib(p.peak_bytes),
                           p.tokens_per_s, gib(p.kv_cache_budget), p.fits ? "" : "  (does not fit)");
  }
  return absl::StrFormat("  %4s  %-16s %-9s  %10s  %7.3f s  %9.0f tok/s  MFU %4.1f%%%s\n", position, layout,
                         recompute_name(p.training.recompute), gib(p.peak_bytes), p.time.total_s(), p.tokens_per_s,
                         100.0 * p.time.model_flops / (request.num_devices * request.hardware.peak_flops * p.time.total_s()),
                         p.fits ? "" : "  (does not fit)");
}

void append_training_detail(std::string& out, const PlanRequest& r, const LayoutPlan& p) {
  const TrainingMemory& m = p.memory;
  const ActivationMemory& a = m.activation_parts;
  const std::string dtype(dtype_name(r.hardware.dtype));
  absl::StrAppendFormat(&out, "  memory per device (stage %d of %d: %d decoder layers%s%s, %d parameters):\n",
                        m.stage.stage, p.layout.pp, m.stage.num_layers, m.stage.first_stage ? ", vision + embedding" : "",
                        m.stage.last_stage ? ", LM head" : "", m.stage.total());
  absl::StrAppendFormat(&out, "    weights      %10s  %s working copy\n", gib(m.weights), dtype);
  absl::StrAppendFormat(&out, "    gradients    %10s  %s, the full accumulation buffer\n", gib(m.gradients), dtype);
  absl::StrAppendFormat(&out, "    optimizer    %10s  f32 master + 2 AdamW moments of %d parameters (ZeRO-%d over dp %d)\n",
                        gib(m.optimizer), m.optimizer_shard, p.training.zero_stage, p.layout.dp);
  absl::StrAppendFormat(&out, "    activations  %10s  recompute %s, %d micro-batch(es) in flight x %s saved "
                              "(layers %s, media %s, head %s) + workspace %s + backward scratch %s + logits chunk %s\n",
                        gib(m.activations), recompute_name(p.training.recompute), m.in_flight, gib(a.saved()),
                        gib(a.decoder_saved), gib(a.media_saved), gib(a.head_saved), gib(a.workspace),
                        gib(a.backward_scratch), gib(a.loss_logits));
  absl::StrAppendFormat(&out, "    buffers      %10s  ZeRO staging\n", gib(m.buffers));
  absl::StrAppendFormat(&out, "    runtime      %10s  reserve (context, workspaces, allocator)\n", gib(m.runtime));
  absl::StrAppendFormat(&out, "    total        %10s  of %s\n", gib(m.total()), gib(r.hardware.memory_bytes));
  const StepTime& t = p.time;
  absl::StrAppendFormat(&out, "  step: %.3f s = compute %.3f (%d micro-batch(es)) + bubble %.3f + TP %.3f + PP %.3f + "
                              "DP %.3f exposed of %.3f; %.0f tokens/s, MFU %.1f%%\n",
                        t.total_s(), t.compute_s, p.training.num_micro_batches, t.bubble_s, t.tp_s, t.pp_s,
                        t.dp_exposed_s, t.dp_s, p.tokens_per_s,
                        100.0 * t.model_flops / (r.num_devices * r.hardware.peak_flops * t.total_s()));
  const auto axis_line = [&](const char* name, const AxisTraffic& a) {
    if (a.payload.empty()) return;
    std::vector<std::string> parts;
    for (const auto& [op, bytes] : a.payload) parts.push_back(absl::StrCat(op, " ", gb(static_cast<double>(bytes))));
    absl::StrAppendFormat(&out, "    %s  %s payload; %s on the wire\n", name, absl::StrJoin(parts, ", "),
                          gb(a.wire_bytes));
  };
  out += "  traffic per device per step:\n";
  axis_line("TP", p.traffic.tp);
  axis_line("PP", p.traffic.pp);
  axis_line("DP", p.traffic.dp);
  if (p.traffic.tp.payload.empty() && p.traffic.pp.payload.empty() && p.traffic.dp.payload.empty()) {
    out += "    none (one device)\n";
  }
}

void append_serving_detail(std::string& out, const PlanRequest& r, const LayoutPlan& p) {
  const ServingMemory& m = p.serving_memory;
  absl::StrAppendFormat(&out, "  memory per device (stage %d of %d: %d decoder layers, %d parameters):\n",
                        m.stage.stage, p.layout.pp, m.stage.num_layers, m.stage.total());
  absl::StrAppendFormat(&out, "    weights      %10s  %s\n", gib(m.weights), dtype_name(r.hardware.dtype));
  absl::StrAppendFormat(&out, "    KV cache     %10s  %d sequences x %d tokens x %d bytes\n", gib(m.kv_cache),
                        p.serving.max_num_seqs, p.serving.max_len, m.kv_bytes_per_token);
  absl::StrAppendFormat(&out, "    activations  %10s  one engine step\n", gib(m.activations));
  absl::StrAppendFormat(&out, "    runtime      %10s\n", gib(m.runtime));
  absl::StrAppendFormat(&out, "    total        %10s  of %s; the KV cache may grow to %s (%d tokens)\n",
                        gib(m.total()), gib(r.hardware.memory_bytes), gib(p.kv_cache_budget),
                        m.kv_bytes_per_token > 0 ? p.kv_cache_budget / m.kv_bytes_per_token : 0);
  absl::StrAppendFormat(&out, "  decode step %.2f ms for %d sequences per replica, %d replica(s): %.0f tokens/s\n",
                        1e3 * p.decode_step_s, p.serving.max_num_seqs, p.layout.dp, p.tokens_per_s);
}

}  // namespace

std::vector<std::string> config_overrides(const PlanRequest& request, const LayoutPlan& plan) {
  const Layout& l = plan.layout;
  return {absl::StrCat("layout.tp=", l.tp), absl::StrCat("layout.pp=", l.pp), absl::StrCat("layout.dp=", l.dp),
          absl::StrCat("layout.zero=", plan.training.zero_stage),
          absl::StrCat("recompute=", recompute_name(plan.training.recompute)),
          absl::StrCat("batch.micro=", request.micro_batch),
          absl::StrCat("batch.global=", int64_t{l.dp} * request.micro_batch * plan.training.num_micro_batches)};
}

std::string sbatch_line(const PlanRequest& request, const std::string& model_dir, const LayoutPlan& plan) {
  const bool cpu = request.hardware.dtype == DType::kF32;
  const std::string slurm = absl::StrCat("sbatch -N ", nodes(request), " --ntasks-per-node=", tasks_per_node(request),
                                         " --gpus-per-task=", cpu ? 0 : 1);
  if (request.task == Task::kServe) {
    return absl::StrCat(slurm, " slurm/serve.sbatch ", model_dir, " --device ", cpu ? "cpu" : "cuda",
                        " --max-num-seqs ", request.micro_batch, " --max-model-len ", request.seq_len,
                        " --kv-cache-bytes ", plan.kv_cache_budget / kMiB, "M",
                        plan.layout.tp > 1 ? absl::StrCat(" --tp ", plan.layout.tp) : "");
  }
  return absl::StrCat(slurm, " slurm/finetune.sbatch CONFIG.yaml model=", model_dir, " device=", cpu ? "cpu" : "cuda",
                      " ", absl::StrJoin(config_overrides(request, plan), " "));
}

std::string plan_text(const model::PlmConfig& config, const PlanRequest& r, const std::string& model_dir,
                      const std::vector<LayoutPlan>& plans, int max_rows) {
  std::string out;
  const model::ParameterCounts counts = model::count_parameters(config);
  absl::StrAppendFormat(&out, "plm plan: %s (%d parameters) on %d x %s (%s each, %d per node), %s\n", model_dir,
                        counts.total, r.num_devices, r.hardware.name, gib(r.hardware.memory_bytes),
                        std::min(r.devices_per_node, r.num_devices), task_name(r.task));
  if (r.task == Task::kTrain) {
    const int64_t global = r.global_batch > 0 ? r.global_batch : int64_t{r.num_devices} * r.micro_batch;
    absl::StrAppendFormat(&out, "  %d tokens per sequence (%d tiles), micro-batch %d, global batch %d, ZeRO-%d, "
                                "recompute %s\n",
                          r.seq_len, r.tiles_per_sample, r.micro_batch, global, r.zero_stage,
                          r.recompute ? recompute_name(*r.recompute) : "the cheapest that fits");
  } else {
    absl::StrAppendFormat(&out, "  %d sequences of up to %d tokens per replica (%d tiles each step)\n", r.micro_batch,
                          r.seq_len, r.tiles_per_sample);
  }
  if (plans.empty() || !plans.front().valid.ok() || !plans.front().fits) {
    out += "no layout fits: the smallest is first below; try more devices, a shorter --seq-len, a smaller "
           "--micro-batch, --zero 1 or 2, or --recompute full\n";
  } else {
    const LayoutPlan& best = plans.front();
    absl::StrAppendFormat(&out, "best: %s, %s of %s per device\n", best.layout.to_string(), gib(best.peak_bytes),
                          gib(r.hardware.memory_bytes));
    if (r.task == Task::kTrain) {
      append_training_detail(out, r, best);
      absl::StrAppendFormat(&out, "  overrides: %s\n", absl::StrJoin(config_overrides(r, best), " "));
    } else {
      append_serving_detail(out, r, best);
    }
    if (r.task == Task::kTrain) {
      absl::StrAppendFormat(&out, "  %s\n", sbatch_line(r, model_dir, best));
    } else if (const LayoutPlan* runnable = runnable_serving(plans); runnable == nullptr) {
      out += "  plm serve runs pp = 1 (a replica per --tp tasks), and no such layout fits: fewer --micro-batch "
             "sequences or a shorter --seq-len\n";
    } else {
      if (runnable != &best) {
        absl::StrAppendFormat(&out, "  plm serve runs pp = 1 (a replica per --tp tasks): %s, %.0f tokens/s\n",
                              runnable->layout.to_string(), runnable->tokens_per_s);
      }
      absl::StrAppendFormat(&out, "  %s\n", sbatch_line(r, model_dir, *runnable));
    }
  }
  out += "ranking:\n";
  int rank = 0;
  for (const LayoutPlan& p : plans) {
    if (rank++ >= max_rows) break;
    out += ranking_row(r, p, rank);
  }
  if (static_cast<int>(plans.size()) > max_rows) {
    absl::StrAppendFormat(&out, "  ... %d more (--all or --json lists every layout)\n", plans.size() - max_rows);
  }
  return out;
}

nlohmann::ordered_json plan_json(const model::PlmConfig& config, const PlanRequest& r, const std::string& model_dir,
                                 const std::vector<LayoutPlan>& plans) {
  const model::ParameterCounts counts = model::count_parameters(config);
  nlohmann::ordered_json j;
  j["model"] = model_dir;
  j["parameters"] = {{"vision", counts.vision}, {"projector", counts.projector}, {"text", counts.text},
                     {"total", counts.total}};
  const Hardware& h = r.hardware;
  j["request"] = {{"task", task_name(r.task)}, {"gpus", r.num_devices}, {"gpus_per_node", r.devices_per_node},
                  {"hardware", {{"name", h.name}, {"memory_bytes", h.memory_bytes}, {"peak_flops", h.peak_flops},
                                {"efficiency", h.efficiency}, {"memory_bytes_per_s", h.memory_bytes_per_s},
                                {"intra_node_bytes_per_s", h.intra_node_bytes_per_s},
                                {"inter_node_bytes_per_s", h.inter_node_bytes_per_s},
                                {"runtime_bytes", h.runtime_bytes}, {"dtype", std::string(dtype_name(h.dtype))}}},
                  {"seq_len", r.seq_len}, {"micro_batch", r.micro_batch}, {"global_batch", r.global_batch},
                  {"tiles", r.tiles_per_sample}, {"zero", r.zero_stage},
                  {"recompute", r.recompute ? recompute_name(*r.recompute) : "auto"}};
  j["layouts"] = nlohmann::ordered_json::array();
  for (const LayoutPlan& p : plans) j["layouts"].push_back(layout_json(r, p));
  const bool found = !plans.empty() && plans.front().valid.ok() && plans.front().fits;
  j["best"] = found ? nlohmann::ordered_json(0) : nlohmann::ordered_json();
  if (found && r.task == Task::kTrain) {
    j["overrides"] = config_overrides(r, plans.front());
    j["sbatch"] = sbatch_line(r, model_dir, plans.front());
  }
  if (const LayoutPlan* runnable = runnable_serving(plans); r.task == Task::kServe && runnable != nullptr) {
    j["sbatch_layout"] = runnable - plans.data();  // slurm/serve.sbatch runs tp = pp = 1 only
    j["sbatch"] = sbatch_line(r, model_dir, *runnable);
  }
  return j;
}

}  // namespace plm::plan
