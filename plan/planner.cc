#include "plan/planner.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace plm::plan {

namespace {

constexpr model::Recompute kPolicies[] = {model::Recompute::kNone, model::Recompute::kSelective,
                                          model::Recompute::kFull};

absl::Status check_request(const model::PlmConfig& config, const PlanRequest& r) {
  const auto fail = [](auto... parts) { return absl::InvalidArgumentError(absl::StrCat(parts...)); };
  if (r.num_devices < 1 || r.devices_per_node < 1) {
    return fail("--gpus (", r.num_devices, ") and --gpus-per-node (", r.devices_per_node, ") must be at least 1");
  }
  if (r.num_devices > r.devices_per_node && r.num_devices % r.devices_per_node != 0) {
    return fail("--gpus (", r.num_devices, ") is not a whole number of nodes of ", r.devices_per_node);
  }
  if (r.micro_batch < 1 || r.global_batch < 0 || r.tiles_per_sample < 0 || r.serve_step_tokens < 1) {
    return fail("--micro-batch (", r.micro_batch, ") must be at least 1, --global-batch (", r.global_batch,
                ") and --tiles (", r.tiles_per_sample, ") at least 0");
  }
  if (r.zero_stage < 0 || r.zero_stage > 2) return fail("--zero (", r.zero_stage, ") must be 0, 1 or 2");
  const int64_t placeholders = int64_t{r.tiles_per_sample} * config.tokens_per_tile();
  if (r.seq_len < placeholders + 2) {
    return fail("--seq-len (", r.seq_len, ") leaves no text after ", r.tiles_per_sample, " tile(s) x ",
                config.tokens_per_tile(), " placeholders");
  }
  if (r.hardware.memory_bytes <= 0 || r.hardware.peak_flops <= 0.0) {
    return fail("the device needs memory and FLOP/s (got ", r.hardware.memory_bytes, " bytes, ",
                r.hardware.peak_flops, " FLOP/s)");
  }
  return absl::OkStatus();
}

int64_t global_batch(const PlanRequest& r) {
  return r.global_batch > 0 ? r.global_batch : int64_t{r.num_devices} * r.micro_batch;
}

void plan_training(const model::PlmConfig& config, const PlanRequest& r, int per_node, LayoutPlan& plan) {
  const Layout& l = plan.layout;
  const int64_t per_step = int64_t{l.dp} * r.micro_batch;
  if (global_batch(r) % per_step != 0) {
    plan.valid = absl::InvalidArgumentError(absl::StrCat("the global batch (", global_batch(r),
                                                         ") is not a multiple of micro-batch (", r.micro_batch,
                                                         ") x dp (", l.dp, ")"));
    return;
  }
  TrainingSetup setup{.layout = l,
                      .zero_stage = r.zero_stage,
                      .micro_batch = {.tokens = r.micro_batch * r.seq_len, .tiles = int64_t{r.micro_batch} * r.tiles_per_sample},
                      .sequence_tokens = r.seq_len,
                      .num_micro_batches = static_cast<int>(global_batch(r) / per_step),
                      .dtype = r.hardware.dtype,
                      .runtime_bytes = r.hardware.runtime_bytes};
  // The requested policy, or the first (cheapest in compute) that fits; the smallest when none does.
  for (const model::Recompute policy : kPolicies) {
    if (r.recompute && policy != *r.recompute) continue;
    setup.recompute = policy;
    plan.memory = peak_training_memory(config, setup);
    plan.fits = plan.memory.total() <= r.hardware.memory_bytes;
    if (plan.fits) break;
  }
  plan.training = setup;
  plan.peak_bytes = plan.memory.total();
  plan.traffic = training_traffic(config, setup, plan.memory.stage.stage);
  plan.time = training_step_time(config, setup, r.hardware, per_node);
  plan.tokens_per_s = static_cast<double>(global_batch(r) * r.seq_len) / plan.time.total_s();
}

void plan_serving(const model::PlmConfig& config, const PlanRequest& r, int per_node, LayoutPlan& plan) {
  const ServingSetup setup{.layout = plan.layout,
                           .max_num_seqs = r.micro_batch,
                           .max_len = r.seq_len,
                           .step_tokens = r.serve_step_tokens,
                           .tiles = r.tiles_per_sample,
                           .dtype = r.hardware.dtype,
                           .runtime_bytes = r.hardware.runtime_bytes};
  plan.serving = setup;
  plan.serving_memory = peak_serving_memory(config, setup);
  plan.peak_bytes = plan.serving_memory.total();
  plan.fits = plan.peak_bytes <= r.hardware.memory_bytes;
  const ServingMemory& m = plan.serving_memory;
  plan.kv_cache_budget = std::max<int64_t>(0, r.hardware.memory_bytes - m.weights - m.activations - m.runtime);
  plan.decode_step_s = decode_step_seconds(config, setup, r.hardware, per_node);
  plan.tokens_per_s = plan.layout.dp * static_cast<double>(r.micro_batch) / plan.decode_step_s;
}

// Fitting layouts fastest first (less memory on a tie), then the rest smallest first, then invalid ones.
bool ranks_before(const LayoutPlan& a, const LayoutPlan& b) {
  if (a.valid.ok() != b.valid.ok()) return a.valid.ok();
  if (!a.valid.ok()) return false;
  if (a.fits != b.fits) return a.fits;
  if (a.fits && a.tokens_per_s != b.tokens_per_s) return a.tokens_per_s > b.tokens_per_s;
  return a.peak_bytes < b.peak_bytes;
}

}  // namespace

absl::StatusOr<std::vector<LayoutPlan>> plan_layouts(const model::PlmConfig& config, const PlanRequest& request) {
  if (absl::Status s = check_request(config, request); !s.ok()) return s;
  const int per_node = std::min(request.devices_per_node, request.num_devices);
  std::vector<LayoutPlan> plans;
  for (const Layout& layout : all_layouts(request.num_devices)) {
    if ((request.only_tp && layout.tp != *request.only_tp) || (request.only_pp && layout.pp != *request.only_pp)) continue;
    LayoutPlan plan{.layout = layout, .valid = check_layout(config, layout, per_node)};
    if (plan.valid.ok()) {
      switch (request.task) {
        case Task::kTrain: plan_training(config, request, per_node, plan); break;
        case Task::kServe: plan_serving(config, request, per_node, plan); break;
      }
    }
    plans.push_back(std::move(plan));
  }
  std::stable_sort(plans.begin(), plans.end(), ranks_before);
  return plans;
}

}  // namespace plm::plan
