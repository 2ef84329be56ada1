// The 1F1B schedule: the actions of each stage (table), and the executor on two in-process stages of the tiny
// model with micro-batches of which some carry no image — it finishes, stage 0 runs the vision tower only for the
// micro-batches with media, the last stage's loss is the one-rank pass's, and the bytes each stage sends and
// receives are the analytic count (trainer/README.md "Pipeline parallelism"): per micro-batch of T tokens, one
// (T, H) activation forward and one (T, H) gradient backward over each stage boundary.
#include "trainer/pipeline_schedule.h"

#include <gtest/gtest.h>

#include <mutex>
#include <string>
#include <vector>

#include "distributed/counting_communicator.h"
#include "distributed/local_communicator.h"
#include "distributed/process_groups.h"
#include "model/flat_parameters.h"
#include "model/training_pass.h"
#include "tests/model/training_samples.h"

namespace plm::trainer {
namespace {

constexpr PipeOp F = PipeOp::kForward, B = PipeOp::kBackward;

struct ScheduleCase {
  int stage, num_stages, num_micro;
  std::vector<PipeAction> want;
};

TEST(OneFOneB, ActionsPerStage) {
  const ScheduleCase cases[] = {
      {0, 1, 3, {{F, 0}, {B, 0}, {F, 1}, {B, 1}, {F, 2}, {B, 2}}},
      {0, 2, 4, {{F, 0}, {F, 1}, {B, 0}, {F, 2}, {B, 1}, {F, 3}, {B, 2}, {B, 3}}},
      {1, 2, 4, {{F, 0}, {B, 0}, {F, 1}, {B, 1}, {F, 2}, {B, 2}, {F, 3}, {B, 3}}},
      {0, 4, 4, {{F, 0}, {F, 1}, {F, 2}, {F, 3}, {B, 0}, {B, 1}, {B, 2}, {B, 3}}},
      {1, 4, 4, {{F, 0}, {F, 1}, {F, 2}, {B, 0}, {F, 3}, {B, 1}, {B, 2}, {B, 3}}},
      {3, 4, 4, {{F, 0}, {B, 0}, {F, 1}, {B, 1}, {F, 2}, {B, 2}, {F, 3}, {B, 3}}},
      {0, 4, 2, {{F, 0}, {F, 1}, {B, 0}, {B, 1}}},  // fewer micro-batches than the warmup
  };
  for (const ScheduleCase& c : cases) {
    EXPECT_EQ(one_f_one_b(c.stage, c.num_stages, c.num_micro), c.want)
        << "stage " << c.stage << " of " << c.num_stages << ", " << c.num_micro << " micro-batches";
  }
}

struct StageResult {
  PipelineStats stats;
  int64_t sent_bytes = 0, received_bytes = 0;  // over the pipeline group
};

int64_t bytes_of(const distributed::CountingCommunicator& c, const std::string& op) {
  const auto it = c.bytes().find(op);
  return it == c.bytes().end() ? 0 : it->second;
}

TEST(OneFOneB, MicroBatchesWithoutMediaRunNoVisionTowerAndTransfersMatchTheCount_np2) {
  const model::testing::Sample image = model::testing::load_sample("image"),
                               text = model::testing::load_sample("text");
  std::vector<OwnedTensor> storage;
  // Two of four micro-batches carry an image; the others are text only.
  const std::vector<model::TrainingBatch> micro = {
      model::testing::pack({&text}, storage), model::testing::pack({&image, &text}, storage),
      model::testing::pack({&text, &text}, storage), model::testing::pack({&image}, storage)};
  int64_t labelled = 0, tokens = 0;
  for (const model::TrainingBatch& b : micro) {
    tokens += static_cast<int64_t>(b.ids.size());
    for (const int32_t t : b.targets) labelled += t != model::kIgnoreTarget;
  }
  const float loss_scale = 1.0f / static_cast<float>(labelled);
  const std::string dir = model::testing::model_fixtures() + "cls_tied";
  const auto trainable = [](const std::string&) { return true; };

  // One rank holding both stages.
  absl::StatusOr<std::unique_ptr<model::PlmModel>> whole =
      model::PlmModel::load(dir, Device::cpu(), {}, {.for_training = true});
  ASSERT_TRUE(whole.ok()) << whole.status();
  double want_loss = 0.0;
  {
    model::FlatParameters grads((*whole)->weights(), DType::kF32, Device::cpu(), trainable);
    for (const model::TrainingBatch& b : micro) {
      const absl::StatusOr<model::MicroBatchLoss> r =
          model::train_forward_backward(**whole, grads.views(), b, loss_scale);
      ASSERT_TRUE(r.ok()) << r.status();
      want_loss += r->loss_sum;
    }
  }

  std::mutex mutex;
  std::vector<StageResult> stages(2);
  std::vector<std::string> errors;
  distributed::run_local_ranks(2, [&](distributed::Communicator& world) {
    absl::StatusOr<distributed::ProcessGroups> groups =
        distributed::ProcessGroups::create(world.split(0, world.rank(), "world"), 1, 2);
    PLM_CHECK(groups.ok()) << groups.status();
    absl::StatusOr<std::unique_ptr<model::PlmModel>> m =
        model::PlmModel::load(dir, Device::cpu(), {.pp = groups->pp.get()}, {.for_training = true});
    PLM_CHECK(m.ok()) << m.status();
    model::FlatParameters grads((*m)->weights(), DType::kF32, Device::cpu(), trainable);
    distributed::CountingCommunicator counted(*groups->pp);
    const absl::StatusOr<PipelineStats> ran =
        run_one_f_one_b(**m, grads.views(), micro, loss_scale, counted, {});
    std::lock_guard<std::mutex> lock(mutex);
    if (!ran.ok()) {
      errors.push_back(std::string(ran.status().message()));
      return;
    }
    StageResult& r = stages[groups->pp->rank()];
    r.stats = *ran;
    r.sent_bytes = bytes_of(counted, "send");
    r.received_bytes = bytes_of(counted, "recv");
  });
  ASSERT_TRUE(errors.empty()) << errors[0];
  EXPECT_EQ(stages[0].stats.vision_passes, 2);
  EXPECT_EQ(stages[0].stats.media_micro, 2);
  EXPECT_EQ(stages[0].stats.text_micro, 2);
  EXPECT_EQ(stages[1].stats.vision_passes, 0);
  EXPECT_EQ(stages[0].stats.loss_sum, 0.0);
  EXPECT_NEAR(stages[1].stats.loss_sum, want_loss, 1e-5 * want_loss);
  // At most num_stages - stage micro-batches hold activations at once.
  EXPECT_EQ(stages[0].stats.peak_in_flight, 2);
  EXPECT_EQ(stages[1].stats.peak_in_flight, 1);
  // One (T, H) f32 tensor each way per micro-batch over the one boundary.
  const int64_t boundary = tokens * (*whole)->config().text.hidden_size * 4;
  for (const StageResult& r : stages) {
    EXPECT_EQ(r.sent_bytes, boundary);
    EXPECT_EQ(r.received_bytes, boundary);
  }
}

}  // namespace
}  // namespace plm::trainer
