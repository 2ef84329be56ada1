#include "tests/trainer/pytorch_fixtures.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>

#include "core/check.h"
#include "model/weights/weight_store.h"

namespace plm::testing {

namespace {

constexpr const char* kRows = ".rows";
constexpr const char* kValues = ".values";
constexpr const char* kRowNorms = ".row_norms";

bool ends_with(const std::string& s, const std::string& suffix) { return s.size() >= suffix.size() && s.ends_with(suffix); }

std::string strip(const std::string& s, const std::string& suffix) { return s.substr(0, s.size() - suffix.size()); }

double max_abs(const float* p, int64_t n) {
  double m = 0.0;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, std::abs(static_cast<double>(p[i])));
  return m;
}

OwnedTensor load_f32(const model::WeightStore& store, const std::string& name) {
  absl::StatusOr<OwnedTensor> t = store.load(name, DType::kF32);
  PLM_CHECK(t.ok()) << t.status();
  return std::move(*t);
}

}  // namespace

std::filesystem::path training_fixtures_dir() {
  return std::filesystem::path(PLM_SOURCE_DIR) / "tests" / "fixtures" / "training";
}

std::filesystem::path training_run_dir(const std::string& run) { return training_fixtures_dir() / "runs" / run; }

nlohmann::json read_run_metrics(const std::string& run) {
  std::ifstream in(training_run_dir(run) / "metrics.json");
  PLM_CHECK(in) << "cannot open metrics.json of " << run;
  return nlohmann::json::parse(in);
}

trainer::TrainConfig fixture_config(const std::string& run, const std::filesystem::path& output_dir,
                                    const std::vector<std::string>& overrides) {
  const std::filesystem::path root = PLM_SOURCE_DIR;
  std::ifstream in(training_run_dir(run) / "config.yaml");
  const std::string yaml((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string model = run.find("nocls") != std::string::npos ? "nocls_untied" : "cls_tied";
  std::vector<std::string> all = {"model=" + (root / "tests/fixtures/models" / model).string(),
                                  "data.train=" + (training_fixtures_dir() / "sft/train.jsonl").string(),
                                  "output_dir=" + output_dir.string()};
  all.insert(all.end(), overrides.begin(), overrides.end());
  absl::StatusOr<trainer::TrainConfig> config = trainer::parse_train_config_text(yaml, run + "/config.yaml", all);
  PLM_CHECK(config.ok()) << config.status();
  return *config;
}

std::vector<TensorDifference> compare_with_fixture(const std::filesystem::path& fixture_file,
                                                   const std::function<Tensor(const std::string&)>& ours) {
  absl::StatusOr<model::WeightStore> store = model::WeightStore::open(fixture_file.string());
  PLM_CHECK(store.ok()) << store.status();
  std::vector<TensorDifference> out;
  for (const std::string& name : store->names()) {
    if (ends_with(name, kRows) || ends_with(name, kRowNorms)) continue;
    const bool sampled = ends_with(name, kValues);
    const std::string hf_name = sampled ? strip(name, kValues) : name;
    const Tensor mine = ours(hf_name);
    PLM_CHECK(mine.defined()) << "plm has no tensor " << hf_name;
    const float* p = mine.data_as<float>();
    const OwnedTensor theirs = load_f32(*store, name);
    const float* q = theirs.data_as<float>();
    const double scale = std::max(max_abs(q, theirs.numel()), 1e-30);
    double worst = 0.0;
    if (!sampled) {
      PLM_CHECK(mine.numel() == theirs.numel()) << name << ": " << mine.numel() << " vs " << theirs.numel();
      for (int64_t i = 0; i < theirs.numel(); ++i) worst = std::max(worst, std::abs(static_cast<double>(p[i]) - q[i]));
      out.push_back({name, worst / scale});
      continue;
    }
    // A sampled table: the stored rows, then the norm of every row.
    const OwnedTensor rows = [&] {
      absl::StatusOr<OwnedTensor> r = store->load(hf_name + kRows);
      PLM_CHECK(r.ok()) << r.status();
      return std::move(*r);
    }();
    const int64_t width = theirs.size(1);
    for (int64_t r = 0; r < rows.numel(); ++r) {
      const int64_t row = rows.data_as<int32_t>()[r];
      for (int64_t c = 0; c < width; ++c) {
        worst = std::max(worst, std::abs(static_cast<double>(p[row * width + c]) - q[r * width + c]));
      }
    }
    out.push_back({name, worst / scale});
    const OwnedTensor norms = load_f32(*store, hf_name + kRowNorms);
    const float* n = norms.data_as<float>();
    PLM_CHECK(mine.numel() == norms.numel() * width) << hf_name << ": " << mine.numel() << " elements";
    double worst_norm = 0.0;
    for (int64_t row = 0; row < norms.numel(); ++row) {
      double sq = 0.0;
      for (int64_t c = 0; c < width; ++c) sq += static_cast<double>(p[row * width + c]) * p[row * width + c];
      worst_norm = std::max(worst_norm, std::abs(std::sqrt(sq) - n[row]));
    }
    out.push_back({hf_name + kRowNorms, worst_norm / std::max(max_abs(n, norms.numel()), 1e-30)});
  }
  std::sort(out.begin(), out.end(), [](const TensorDifference& a, const TensorDifference& b) { return a.relative > b.relative; });
  return out;
}

}  // namespace plm::testing
