// Reading the PyTorch training runs of tests/fixtures/training/runs (tools/reference/make_training_fixtures.py)
// and comparing plm's tensors with them the way that README prescribes: per tensor, the largest absolute
// difference relative to the fixture tensor's largest |value|; the 128256-row tables through their stored rows
// (`.rows` / `.values`) and the norms of all rows (`.row_norms`).
#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/tensor.h"
#include "trainer/train_config.h"

namespace plm::testing {

std::filesystem::path training_fixtures_dir();                // tests/fixtures/training
std::filesystem::path training_run_dir(const std::string& run);  // .../runs/<run>
nlohmann::json read_run_metrics(const std::string& run);      // metrics.json

// The run's config.yaml with its repository-relative paths made absolute, output_dir set, then `overrides`.
trainer::TrainConfig fixture_config(const std::string& run, const std::filesystem::path& output_dir,
                                    const std::vector<std::string>& overrides = {});

struct TensorDifference {
  std::string name;
  double relative = 0.0;  // max |ours - theirs| / max |theirs| (0 when theirs is all zero and ours equal)
};

// Compares every tensor of the fixture file with `ours(name)` (a host f32 view of plm's tensor of that HF name,
// any shape with the fixture's element count; undefined when plm has none, which fails). Returns the
// differences, worst first.
std::vector<TensorDifference> compare_with_fixture(const std::filesystem::path& fixture_file,
                                                   const std::function<Tensor(const std::string&)>& ours);

}  // namespace plm::testing
