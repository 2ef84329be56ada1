// What `plm plan` prints: the best layout with its memory breakdown, step time and traffic, the `layout.*`
// overrides and the sbatch line that run it (serving: the best layout slurm/serve.sbatch runs, tp = pp = 1), then
// the ranking (text); or all of it as one JSON document.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/config.h"
#include "plan/planner.h"

namespace plm::plan {

// `key=value` config overrides of `plm train` for a training plan (layout.*, recompute, batch.*).
std::vector<std::string> config_overrides(const PlanRequest& request, const LayoutPlan& plan);

// The sbatch command that runs `plan`: slurm/finetune.sbatch with the overrides, or slurm/serve.sbatch with
// the KV-cache budget. model_dir is passed through as given.
std::string sbatch_line(const PlanRequest& request, const std::string& model_dir, const LayoutPlan& plan);

// plans: plan_layouts' ranking (the first is the best when it fits). max_rows: ranking rows printed.
std::string plan_text(const model::PlmConfig& config, const PlanRequest& request, const std::string& model_dir,
                      const std::vector<LayoutPlan>& plans, int max_rows);
nlohmann::ordered_json plan_json(const model::PlmConfig& config, const PlanRequest& request,
                                 const std::string& model_dir, const std::vector<LayoutPlan>& plans);

}  // namespace plm::plan
