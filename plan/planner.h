// The layout planner behind `plm plan`: every TP x PP x DP split of the devices that the model and the batch
// allow, each with its predicted per-device memory (plan/memory_model.h), communication (communication_model.h)
// and step time (step_time.h), ranked: layouts that fit first, fastest first; then those that do not fit,
// smallest first; then the ones that cannot run, with the reason. Reads nothing but the config.
#pragma once

#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "model/config.h"
#include "model/recompute.h"
#include "plan/communication_model.h"
#include "plan/hardware.h"
#include "plan/layout.h"
#include "plan/memory_model.h"
#include "plan/step_time.h"

namespace plm::plan {

enum class Task { kTrain, kServe };

struct PlanRequest {
  Task task = Task::kTrain;
  int num_devices = 1;
  int devices_per_node = 8;     // capped at num_devices
  Hardware hardware = {};
  int64_t seq_len = 2048;       // tokens per sequence (image placeholders included); serve: prompt + reply
  int micro_batch = 1;          // sequences per micro-batch; serve: sequences decoding together per replica
  int64_t global_batch = 0;     // sequences per optimizer step; 0: one micro-batch per device
  int tiles_per_sample = 0;     // image tiles + video frames per sequence
  int zero_stage = 1;
  std::optional<model::Recompute> recompute = {};  // unset: the cheapest policy that fits (none, selective, full)
  int64_t serve_step_tokens = 2048;                 // serve: an engine step's token budget (--max-batch-tokens)
  std::optional<int> only_tp = {}, only_pp = {};    // consider only layouts with this tp / pp
};

struct LayoutPlan {
  Layout layout = {};
  absl::Status valid = {};    // not OK: the layout cannot run this model or batch (the message says why)
  bool fits = false;          // valid and the peak rank's memory is within the device's
  int64_t peak_bytes = 0;     // the memory of the rank that needs the most
  double tokens_per_s = 0.0;  // train: trained tokens per second over all devices; serve: decoded tokens

  // Train.
  TrainingSetup training = {};
  TrainingMemory memory = {};   // the rank that needs the most
  Traffic traffic = {};         // that rank's per-step traffic
  StepTime time = {};
  // Serve.
  ServingSetup serving = {};
  ServingMemory serving_memory = {};
  double decode_step_s = 0.0;
  int64_t kv_cache_budget = 0;  // what is left for the KV cache on the peak rank (plm serve --kv-cache-bytes)
};

// InvalidArgument for a request that no layout could satisfy (no devices, a sequence shorter than its tiles...).
absl::StatusOr<std::vector<LayoutPlan>> plan_layouts(const model::PlmConfig& config, const PlanRequest& request);

}  // namespace plm::plan
