#include "tests/trainer/run_comparison.h"

#include <algorithm>
#include <cmath>
#include <csignal>
#include <fstream>
#include <mutex>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "distributed/local_communicator.h"
#include "model/weights/weight_store.h"
#include "trainer/train_run.h"

namespace plm::testing {

namespace {

std::vector<nlohmann::json> metrics_lines(const std::filesystem::path& out) {
  std::ifstream in(out / "metrics.jsonl");
  std::vector<nlohmann::json> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

double relative(double got, double want) { return std::abs(got - want) / std::max(std::abs(want), 1e-30); }

}  // namespace

absl::Status train_on_local_ranks(const trainer::TrainConfig& config, int ranks, int stop_after_step) {
  std::mutex mutex;
  absl::Status status;
  distributed::run_local_ranks(ranks, [&](distributed::Communicator& world) {
    int steps_seen = 0;
    trainer::TrainRunHooks hooks;
    if (stop_after_step > 0) hooks.stop_requested = [&] { return ++steps_seen >= stop_after_step ? SIGTERM : 0; };
    const absl::StatusOr<trainer::TrainRunResult> r = trainer::run_training(config, world, hooks);
    const std::lock_guard<std::mutex> lock(mutex);
    if (!r.ok() && status.ok()) status = r.status();
  });
  return status;
}

RunDifference compare_runs(const std::filesystem::path& want, const std::filesystem::path& got) {
  RunDifference d;
  const std::vector<nlohmann::json> a = metrics_lines(want), b = metrics_lines(got);
  if (a.empty() || a.size() != b.size()) {
    d.error =
        absl::StrCat("metrics.jsonl: ", a.size(), " steps in ", want.string(), ", ", b.size(), " in ", got.string());
    return d;
  }
  d.steps = static_cast<int>(a.size());
  for (size_t i = 0; i < a.size(); ++i) {
    d.loss = std::max(d.loss, relative(b[i]["loss"].get<double>(), a[i]["loss"].get<double>()));
    d.grad_norm = std::max(d.grad_norm, relative(b[i]["grad_norm"].get<double>(), a[i]["grad_norm"].get<double>()));
  }
  absl::StatusOr<model::WeightStore> want_hf = model::WeightStore::open((want / "final-hf").string());
  absl::StatusOr<model::WeightStore> got_hf = model::WeightStore::open((got / "final-hf").string());
  if (!want_hf.ok() || !got_hf.ok()) {
    d.error = absl::StrCat("final-hf: ", want_hf.status().ToString(), "; ", got_hf.status().ToString());
    return d;
  }
  if (want_hf->names() != got_hf->names()) {
    d.error = "final-hf: the exports hold different tensors";
    return d;
  }
  double diff_all = 0.0, largest_all = 0.0;
  for (const std::string& name : want_hf->names()) {
    const absl::StatusOr<OwnedTensor> w = want_hf->load(name), g = got_hf->load(name);
    if (!w.ok() || !g.ok() || w->shape() != g->shape() || w->dtype() != DType::kF32 || g->dtype() != DType::kF32) {
      d.error = absl::StrCat("final-hf: ", name, " differs in shape or is not f32");
      return d;
    }
    double diff = 0.0, largest = 0.0;
    for (int64_t i = 0; i < w->numel(); ++i) {
      diff = std::max(diff, std::abs(static_cast<double>(g->data_as<float>()[i]) - w->data_as<float>()[i]));
      largest = std::max(largest, std::abs(static_cast<double>(w->data_as<float>()[i])));
    }
    diff_all = std::max(diff_all, diff);
    largest_all = std::max(largest_all, largest);
    const double r = diff / std::max(largest, 1e-30);
    if (r >= d.tensor_weight) {
      d.tensor_weight = r;
      d.worst_tensor = name;
    }
  }
  d.weight = diff_all / std::max(largest_all, 1e-30);
  return d;
}

std::string describe(const RunDifference& d) {
  if (!d.error.empty()) return d.error;
  return absl::StrCat(d.steps, " steps: loss ", d.loss, ", grad_norm ", d.grad_norm, ", weights ", d.weight,
                      ", per tensor ", d.tensor_weight, " (", d.worst_tensor, ")");
}

}  // namespace plm::testing
