// `plm train` (run_training) under mpirun with tensor and pipeline parallelism, against one rank: ctest runs TP=2
// (-n 2), TP=4 (-n 4), TP=2 x DP=2 with ZeRO-2 (-n 4), PP=2 (1F1B over 4 micro-batches), PP=4 (a 4-layer model of
// the fixture's widths, random weights), PP=2 x DP=2 ZeRO-1 and ZeRO-2, TP=2 x PP=2, e.g.
// `tp_train_mpi_test SCRATCH 2 2 1` for tp 2, ZeRO-2, pp 1. Rank 0 first trains the single-rank run in process, then
// every rank trains the parallel run; rank 0 compares the per-step losses and grad norms and the final-hf weights (the
// bounds of tp_train_test.cc). With FROM_TP FROM_PP the parallel run is a resharded one: it trains at tp FROM_TP x pp
// FROM_PP (dp the rest of the world) until a stop after step 2, then resumes from that checkpoint at TP x PP. Then two
// data-parallel steps on the layout check that what the TP ranks hold alike (norms, biases, a replicated tower or KV
// head) stays bitwise the same on every rank through MPI's all-reduces (checkpoints and exports take TP rank 0's
// copy). Rank 0 also converts the run's last checkpoint (plm convert) and expects its final-hf, and for a pipeline run
// stage 0's per-micro-batch times with and without media in metrics.jsonl. Any failing rank exits non-zero.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "bench/random_checkpoint.h"
#include "distributed/process_groups.h"
#include "model/weights/hf_names.h"
#include "tests/model/training_samples.h"
#include "trainer/checkpoint_export.h"
#include "trainer/data_parallel_step.h"
#include "distributed/mpi_communicator.h"
#include "distributed/single_rank_communicator.h"
#include "tests/trainer/pytorch_fixtures.h"
#include "tests/trainer/run_comparison.h"
#include "trainer/tied_embedding.h"
#include "trainer/train_run.h"

namespace plm::trainer {
namespace {

struct Layout {
  int tp = 1, pp = 1, zero = 0;
};

// The fixture model has 2 decoder layers; deeper pipelines train a 4-layer model of its widths with random weights
// (bench/random_checkpoint.h) and its tokenizer, written by rank 0 into `dir`. Returns the "model=" override, or none.
std::vector<std::string> model_for(int pp, const std::filesystem::path& dir) {
  if (pp <= 2) return {};
  const std::filesystem::path fixture = model::testing::model_fixtures() + "cls_tied";
  if (!std::filesystem::exists(dir / "config.json")) {
    const absl::StatusOr<bench::RandomCheckpointSummary> written = bench::write_random_checkpoint(
        {.config_dir = fixture.string(), .out_dir = dir.string(), .text_layers = 4, .vision_layers = std::nullopt});
    PLM_CHECK(written.ok()) << written.status();
    for (const char* file : {"tokenizer.json", "tokenizer_config.json", "chat_template.jinja"}) {
      std::filesystem::copy_file(fixture / file, dir / file);
    }
  }
  return {"model=" + dir.string()};
}

TrainConfig run_config(const std::filesystem::path& out, const Layout& l, const std::vector<std::string>& more = {}) {
  std::vector<std::string> overrides = {"steps=6",
                                        "checkpoint.every=3",
                                        "export_dtype=f32",
                                        absl::StrCat("layout.tp=", l.tp),
                                        absl::StrCat("layout.pp=", l.pp),
                                        absl::StrCat("layout.zero=", l.zero)};
  overrides.insert(overrides.end(), more.begin(), more.end());
  return testing::fixture_config("full_cls_tied", out, overrides);
}

// Two steps of DataParallelStep on the run's layout; then every parameter this rank holds whole is compared with TP
// rank 0's copy. Returns what differs ("" when nothing).
std::string replicas_differ(distributed::Communicator& world, const Layout& l, const std::string& model_dir) {
  absl::StatusOr<distributed::ProcessGroups> groups =
      distributed::ProcessGroups::create(world.split(0, world.rank(), "world"), l.tp, l.pp);
  PLM_CHECK(groups.ok()) << groups.status();
  absl::StatusOr<std::unique_ptr<model::PlmModel>> m =
      model::PlmModel::load(model_dir, Device::cpu(),
                            {.tp = groups->tp.get(), .pp = groups->pp.get()}, {.for_training = true});
  PLM_CHECK(m.ok()) << m.status();
  const std::unique_ptr<distributed::Communicator> tied = tied_embedding_group(world, groups->dims, true);
  const model::testing::Sample image = model::testing::load_sample("image"), text = model::testing::load_sample("text");
  std::vector<OwnedTensor> storage;
  const std::vector<model::TrainingBatch> batches = {model::testing::pack({&image, &text}, storage)};
  DataParallelStep step(**m, *groups->dp, {.zero_stage = l.zero, .adamw = {}, .grad_clip = 0.5f},
                        [](const std::string&) { return true; }, tied.get());
  for (int k = 1; k <= 2; ++k) PLM_CHECK(step.step(batches, 1e-3f).ok());
  std::map<std::string, Tensor> held;
  model::PlmWeights weights = (*m)->weights();
  weights.for_each_parameter([&](const std::string& name, Tensor& t) { held[name] = t; });
  std::string differ;
  int compared = 0;
  for (const model::ExpectedTensor& e : model::expected_tensors((*m)->config())) {
    // Whole on every TP rank? (A row-parallel bias is on TP rank 0 only; a split tensor differs by design.)
    OwnedTensor everywhere({1}, DType::kI32);
    everywhere.data_as<int32_t>()[0] = held.contains(e.name) && (*m)->tensor_slice(e.name).whole();
    groups->tp->all_reduce(everywhere, distributed::ReduceOp::kMax);
    OwnedTensor missing({1}, DType::kI32);
    missing.data_as<int32_t>()[0] = !held.contains(e.name) || !(*m)->tensor_slice(e.name).whole();
    groups->tp->all_reduce(missing, distributed::ReduceOp::kMax);
    if (everywhere.data_as<int32_t>()[0] == 0 || missing.data_as<int32_t>()[0] == 1) continue;
    const Tensor t = held.at(e.name);
    OwnedTensor root({t.numel()}, t.dtype());
    copy_tensor(root, t.reshape({t.numel()}));
    groups->tp->broadcast(root, 0);
    if (std::memcmp(root.view().data(), t.data(), t.nbytes()) != 0) differ += e.name + " ";
    ++compared;
  }
  if (world.rank() == 0) std::printf("%d tensors every TP rank holds whole compared after 2 steps\n", compared);
  return differ.empty() ? "" : "differs from TP rank 0's copy: " + differ;
}

std::string file_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// plm convert (one rank) of the run's last checkpoint, whose model file is whole whatever the layout, writes the
// run's final-hf. Returns what went wrong ("" when nothing).
std::string converts_to_final_hf(const std::filesystem::path& run) {
  const std::filesystem::path out = run.parent_path() / "converted";
  const absl::Status converted = convert_checkpoint_to_hf(run, out, {.base_model = std::nullopt, .dtype = DType::kF32});
  if (!converted.ok()) return "plm convert: " + converted.ToString();
  if (file_bytes(out / "model.safetensors") != file_bytes(run / "final-hf" / "model.safetensors")) {
    return "plm convert of the last checkpoint differs from final-hf";
  }
  return "";
}

// A pipeline run logs stage 0's time per micro-batch with and without media (null when a step had none of the kind
// on rank 0): over the run both kinds ran through the pipeline (the fixture mixes image and text-only samples).
// Returns what is missing ("" when nothing).
std::string stage0_times_missing(const std::filesystem::path& run) {
  std::ifstream in(run / "metrics.jsonl");
  std::map<std::string, int> measured;
  for (std::string line; std::getline(in, line);) {
    const nlohmann::json j = nlohmann::json::parse(line);
    for (const char* key : {"stage0_media_s", "stage0_text_s", "stage0_transfer_s"}) {
      measured[key] += j.contains(key) && j[key].is_number();
    }
  }
  for (const auto& [key, steps] : measured) {
    if (steps == 0) return absl::StrCat("metrics.jsonl: no step with ", key);
  }
  return measured.size() == 3 ? "" : "metrics.jsonl: no steps";
}

int run(const std::filesystem::path& scratch, const Layout& l, const std::optional<Layout>& from) {
  std::unique_ptr<distributed::Communicator> world = distributed::mpi_world();
  const std::filesystem::path one = scratch / "one", parallel = scratch / "parallel";
  absl::Status status;
  std::vector<std::string> model;
  if (world->rank() == 0) {
    std::filesystem::remove_all(scratch);
    model = model_for(std::max(l.pp, from ? from->pp : 1), scratch / "model");
    distributed::SingleRankCommunicator single("world");
    status = run_training(run_config(one, {}, model), single).status();
  }
  // The other ranks wait without spinning a core (mpirun oversubscribes this machine's cores).
  OwnedTensor done({1}, DType::kI32);
  world->wait_for_broadcast(done, 0);
  if (world->rank() != 0) model = model_for(std::max(l.pp, from ? from->pp : 1), scratch / "model");
  if (from.has_value()) {  // trained at `from` until a stop after step 2, resumed below at `l`
    int steps_seen = 0;
    const TrainRunHooks stop_after_2 = {.log = nullptr, .stop_requested = [&] { return ++steps_seen >= 2 ? 1 : 0; }};
    const absl::StatusOr<TrainRunResult> first = run_training(run_config(parallel, *from, model), *world, stop_after_2);
    if (!first.ok()) {
      status = first.status();
    } else if (!first->stopped || first->last_step != 2) {
      status = absl::InternalError(absl::StrCat("the run to reshard ended at step ", first->last_step,
                                                first->stopped ? " (stopped)" : " (not stopped)",
                                                ", not after step 2"));
    }
  }
  model.push_back(from.has_value() ? "resume=true" : "resume=false");
  // A split by hand instead of the cost-aware one (which leaves the tiny model's last stage without layers).
  if (const char* layers = std::getenv("PLM_TEST_PP_LAYERS")) {
    model.push_back(absl::StrCat("layout.pp_layers=[", layers, "]"));
  }
  const absl::StatusOr<TrainRunResult> trained = run_training(run_config(parallel, l, model), *world);
  if (!trained.ok()) status = trained.status();
  if (!status.ok()) {
    std::fprintf(stderr, "rank %d: FAILED: %s\n", world->rank(), status.ToString().c_str());
    return 1;
  }
  bool ok = true;
  if (world->rank() == 0) {
    const testing::RunDifference d = testing::compare_runs(one, parallel);
    ok = d.error.empty() && d.loss <= 1e-5 && d.grad_norm <= 1e-4 && d.weight <= 1e-5 && d.tensor_weight <= 5e-5;
    std::printf("tp %d x pp %d x dp %d, ZeRO-%d%s vs one rank: %s: %s\n", l.tp, l.pp, world->size() / (l.tp * l.pp),
                l.zero, from ? absl::StrCat(", resumed from tp ", from->tp, " x pp ", from->pp).c_str() : "",
                testing::describe(d).c_str(), ok ? "OK" : "FAILED");
    const std::string converted = converts_to_final_hf(parallel);
    const std::string skew = l.pp > 1 ? stage0_times_missing(parallel) : "";
    for (const std::string& why : {converted, skew}) {
      if (!why.empty()) std::fprintf(stderr, "rank 0: FAILED: %s\n", why.c_str());
    }
    ok = ok && converted.empty() && skew.empty();
  }
  const std::string model_dir =
      l.pp > 2 ? (scratch / "model").string() : model::testing::model_fixtures() + "cls_tied";
  const std::string replicas = replicas_differ(*world, l, model_dir);
  if (!replicas.empty()) std::fprintf(stderr, "rank %d: FAILED: %s\n", world->rank(), replicas.c_str());
  return ok && replicas.empty() ? 0 : 1;
}

}  // namespace
}  // namespace plm::trainer

int main(int argc, char** argv) {
  if (argc != 5 && argc != 7) {
    std::fprintf(stderr, "usage: %s SCRATCH_DIR TP ZERO PP [FROM_TP FROM_PP]\n", argv[0]);
    return 2;
  }
  const plm::trainer::Layout layout = {.tp = std::atoi(argv[2]), .pp = std::atoi(argv[4]), .zero = std::atoi(argv[3])};
  std::optional<plm::trainer::Layout> from;
  if (argc == 7) from = plm::trainer::Layout{.tp = std::atoi(argv[5]), .pp = std::atoi(argv[6]), .zero = layout.zero};
  return plm::trainer::run(argv[1], layout, from);
}
