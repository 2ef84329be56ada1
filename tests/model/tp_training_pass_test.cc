// The training pass under tensor parallelism on in-process ranks (threads): every parameter's gradient, gathered
// from the TP ranks' slices, and the loss equal the single rank's; the gradients of what every rank holds whole
// (norms, LayerScale, biases, projector, embeddings of the tower, a replicated tower) are bitwise the same on every
// rank. Layouts: cls_tied TP=2 (tower split, KV heads split), TP=4 (tower replicated: 2 heads; each KV head on
// 2 ranks), TP=2 with the tower replicated on request and full recomputation, nocls_untied TP=2 (its one KV head
// on both ranks, untied head).
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "distributed/local_communicator.h"
#include "model/flat_parameters.h"
#include "model/training_pass.h"
#include "model/whole_parameters.h"
#include "tests/model/training_samples.h"

namespace plm::model {
namespace {

using testing::load_sample;
using testing::model_fixtures;
using testing::pack;
using testing::Sample;

struct TpCase {
  std::string model;
  int tp = 2;
  bool replicate_vision = false;
  Recompute recompute = Recompute::kNone;
};

void PrintTo(const TpCase& c, std::ostream* os) {
  *os << c.model << " tp" << c.tp << (c.replicate_vision ? " replicated tower" : "") << " recompute "
      << recompute_text(c.recompute);
}

struct Pass {
  double loss = 0.0;
  std::map<std::string, std::vector<float>> grads;  // whole tensors by HF name (TP rank 0)
  std::map<std::string, std::vector<float>> held_whole;  // this rank's gradients of what it holds whole
};

std::vector<float> floats(Tensor t) {
  const OwnedTensor h = to_device(t, Device::cpu());
  return std::vector<float>(h.data_as<float>(), h.data_as<float>() + h.numel());
}

// One micro-batch holding the image, video and text samples.
Pass run_pass(const PlmModel& model, const TpCase& c) {
  const Sample image = load_sample("image"), video = load_sample("video"), text = load_sample("text");
  std::vector<OwnedTensor> storage;
  const TrainingBatch batch = pack({&image, &video, &text}, storage);
  const int64_t labelled = std::count_if(batch.targets.begin(), batch.targets.end(), [](int32_t t) { return t >= 0; });
  FlatParameters grads(model.weights(), DType::kF32, Device::cpu());
  const absl::StatusOr<MicroBatchLoss> r = train_forward_backward(
      model, grads.views(), batch, 1.0f / static_cast<float>(labelled), {.recompute = c.recompute});
  PLM_CHECK(r.ok()) << r.status();
  Pass pass;
  pass.loss = r->loss_sum / static_cast<double>(r->labelled_tokens);
  for (WholeParameter& p : gather_whole_parameters(model, grads.views())) pass.grads[p.name] = floats(p.value);
  PlmWeights views = grads.views();
  views.for_each_parameter([&](const std::string& name, Tensor& g) {
    if (model.tensor_slice(name).whole()) pass.held_whole[name] = floats(g);
  });
  return pass;
}

class TensorParallelTraining : public ::testing::TestWithParam<TpCase> {};

TEST_P(TensorParallelTraining, GradientsMatchOneRank) {
  const TpCase& c = GetParam();
  const std::string dir = model_fixtures() + c.model;
  absl::StatusOr<std::unique_ptr<PlmModel>> one = PlmModel::load(dir, Device::cpu(), {}, {.for_training = true});
  ASSERT_TRUE(one.ok()) << one.status();
  const Pass want = run_pass(**one, c);

  std::mutex mutex;
  Pass got;
  std::vector<std::map<std::string, std::vector<float>>> replicated(static_cast<size_t>(c.tp));
  std::vector<double> losses(static_cast<size_t>(c.tp));
  distributed::run_local_ranks(c.tp, [&](distributed::Communicator& tp) {
    absl::StatusOr<std::unique_ptr<PlmModel>> model = PlmModel::load(
        dir, Device::cpu(), {.tp = &tp, .replicate_vision = c.replicate_vision}, {.for_training = true});
    ASSERT_TRUE(model.ok()) << model.status();
    Pass pass = run_pass(**model, c);
    std::lock_guard<std::mutex> lock(mutex);
    losses[static_cast<size_t>(tp.rank())] = pass.loss;
    replicated[static_cast<size_t>(tp.rank())] = std::move(pass.held_whole);
    if (tp.rank() == 0) got = std::move(pass);
  });
  EXPECT_FALSE(replicated[0].empty());
  for (int r = 1; r < c.tp; ++r) {
    EXPECT_EQ(losses[static_cast<size_t>(r)], losses[0]) << "rank " << r;
    // Rank 0 holds every whole tensor (row-parallel biases only there); the others a subset, bitwise equal.
    for (const auto& [name, g] : replicated[static_cast<size_t>(r)]) {
      EXPECT_EQ(g, replicated[0].at(name)) << name << " differs between TP ranks 0 and " << r;
    }
  }
  EXPECT_NEAR(got.loss, want.loss, 1e-6 * want.loss);
  ASSERT_EQ(got.grads.size(), want.grads.size());
  double worst = 0.0;
  for (const auto& [name, g] : want.grads) {
    const auto it = got.grads.find(name);
    ASSERT_NE(it, got.grads.end()) << name;
    ASSERT_EQ(it->second.size(), g.size()) << name;
    double diff = 0.0, largest = 0.0;
    for (size_t i = 0; i < g.size(); ++i) {
      diff = std::max(diff, std::abs(static_cast<double>(it->second[i]) - g[i]));
      largest = std::max(largest, std::abs(static_cast<double>(g[i])));
    }
    EXPECT_LE(diff, 1e-5 * largest) << name << ": max |diff| " << diff << " of max |g| " << largest;
    worst = std::max(worst, diff / std::max(largest, 1e-30));
  }
  std::printf("[tp training] %s tp=%d: loss %.9g vs %.9g, worst gradient diff %.3g of the tensor's max\n",
              c.model.c_str(), c.tp, got.loss, want.loss, worst);
}

INSTANTIATE_TEST_SUITE_P(Layouts, TensorParallelTraining,
                         ::testing::Values(TpCase{"cls_tied", 2}, TpCase{"cls_tied", 4},
                                           TpCase{"cls_tied", 2, true, Recompute::kFull},
                                           TpCase{"nocls_untied", 2}),
                         [](const ::testing::TestParamInfo<TpCase>& info) {
                           const TpCase& c = info.param;
                           return c.model + "_tp" + std::to_string(c.tp) + (c.replicate_vision ? "_replicated" : "") +
                                  "_" + std::string(recompute_text(c.recompute)) + "_np" + std::to_string(c.tp);
                         });

}  // namespace
}  // namespace plm::model
