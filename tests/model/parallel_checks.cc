#include "tests/model/parallel_checks.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "distributed/process_groups.h"
#include "model/generator.h"
#include "model/plm_model.h"
#include "tests/model/golden_case.h"

namespace plm::model::testing {

namespace {

// Logits of every prompt position.
absl::StatusOr<OwnedTensor> prompt_logits(const PlmModel& model, const GoldenCase& c) {
  const OwnedTensor image_rows = c.images.view().defined() ? model.encode_media(c.images) : OwnedTensor();
  const OwnedTensor video_rows = c.videos.view().defined() ? model.encode_media(c.videos) : OwnedTensor();
  std::unique_ptr<KvCache> cache = model.make_cache(1, static_cast<int64_t>(c.ids.size()));
  const TokenBatch batch{{{0, 0, static_cast<int64_t>(c.ids.size())}}};
  return model.forward(c.ids, batch, {image_rows.view(), video_rows.view()}, *cache, /*all_positions=*/true);
}

}  // namespace

std::string check_parallel_model(distributed::Communicator& world, const std::string& model_dir,
                                 const std::string& input, int tp, int pp, double* max_relative_diff,
                                 const std::vector<int>& stage_layer_counts) {
  const std::string expected_dir = model_dir.substr(0, model_dir.find("_hub45"));
  absl::StatusOr<GoldenCase> c = load_golden_case(expected_dir, input);
  if (!c.ok()) return std::string(c.status().message());

  absl::StatusOr<distributed::ProcessGroups> groups =
      distributed::ProcessGroups::create(world.split(0, world.rank(), "world"), tp, pp);
  if (!groups.ok()) return std::string(groups.status().message());
  const ModelParallel parallel{groups->tp.get(), groups->pp.get(), stage_layer_counts};
  absl::StatusOr<std::unique_ptr<PlmModel>> sharded =
      PlmModel::load(fixtures_dir() + model_dir, Device::cpu(), parallel);
  if (!sharded.ok()) return absl::StrCat("sharded load: ", sharded.status().message());
  absl::StatusOr<std::unique_ptr<PlmModel>> single = PlmModel::load(fixtures_dir() + model_dir, Device::cpu());
  if (!single.ok()) return absl::StrCat("single-rank load: ", single.status().message());

  // Media embeddings of the first stage: the tower may be split over TP.
  if (parallel.first_stage() && c->images.view().defined()) {
    const OwnedTensor a = (*sharded)->encode_media(c->images), b = (*single)->encode_media(c->images);
    double diff = 0.0;
    for (int64_t i = 0; i < b.numel(); ++i) {
      diff = std::max(diff, std::abs(static_cast<double>(a.data_as<float>()[i]) - b.data_as<float>()[i]));
    }
    if (diff > 1e-5) return absl::StrCat("tp ", tp, ": image embeddings differ from one rank's by ", diff);
  }
  absl::StatusOr<OwnedTensor> got = prompt_logits(**sharded, *c);
  if (!got.ok()) return absl::StrCat("sharded forward: ", got.status().message());
  absl::StatusOr<OwnedTensor> want = prompt_logits(**single, *c);
  if (!want.ok()) return absl::StrCat("single-rank forward: ", want.status().message());
  double worst = 0.0, scale = 0.0;
  for (int64_t i = 0; i < want->numel(); ++i) {
    worst = std::max(worst, std::abs(static_cast<double>(got->data_as<float>()[i]) - want->data_as<float>()[i]));
    scale = std::max(scale, std::abs(static_cast<double>(want->data_as<float>()[i])));
  }
  *max_relative_diff = worst / scale;
  if (*max_relative_diff > 1e-5) {
    return absl::StrCat("tp ", tp, " x pp ", pp, ": logits differ from one rank's by ", *max_relative_diff, " (relative)");
  }

  GenerationOptions options;
  options.max_new_tokens = static_cast<int>(c->expected_tokens.size());
  options.eos_ids = {};
  absl::StatusOr<std::vector<GenerationResult>> results = generate(**sharded, {c->request()}, options);
  if (!results.ok()) return absl::StrCat("generate: ", results.status().message());
  if ((*results)[0].tokens != c->expected_tokens) return absl::StrCat("tp ", tp, " x pp ", pp, ": greedy tokens differ from HF's");
  return "";
}

}  // namespace plm::model::testing
