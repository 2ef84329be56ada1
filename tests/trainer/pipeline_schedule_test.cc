// The 1F1B schedule: the actions of each stage (table), and the executor on two in-process stages of the tiny
// model with micro-batches of which some carry no image — it finishes, stage 0 runs the vision tower only for the
// micro-batches with media, the last stage's loss is the one-rank pass's, and the bytes each stage sends and
// receives are the analytic count (trainer/README.md "Pipeline parallelism"): per micro-batch of T tokens, one
// (T, H) activation forward and one (T, H) gradient backward over each stage boundary.
#include "trainer/pipeline_schedule.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <mutex>
#include <set>
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

TEST(OneFOneB, ProgramPostsEachBoundarysMessagesInTheUpperStagesOrder) {
  constexpr PipeOp RA = PipeOp::kRecvActivation, RG = PipeOp::kRecvGradient, SA = PipeOp::kSendActivation,
                   SG = PipeOp::kSendGradient;
  // Stage 0 sends a0 a1, receives g0, sends a2, ...; stage 1 receives a0 and a1 (ahead of F0), sends g0, ...
  EXPECT_EQ(one_f_one_b_program(0, 2, 3), (std::vector<PipeAction>{{F, 0}, {SA, 0}, {F, 1}, {SA, 1}, {RG, 0}, {B, 0},
                                                                  {F, 2}, {SA, 2}, {RG, 1}, {B, 1}, {RG, 2}, {B, 2}}));
  EXPECT_EQ(one_f_one_b_program(1, 2, 3), (std::vector<PipeAction>{{RA, 0}, {RA, 1}, {F, 0}, {B, 0}, {SG, 0}, {RA, 2},
                                                                  {F, 1}, {B, 1}, {SG, 1}, {F, 2}, {B, 2}, {SG, 2}}));
  EXPECT_EQ(one_f_one_b_program(0, 1, 2), (std::vector<PipeAction>{{F, 0}, {B, 0}, {F, 1}, {B, 1}}));
}

// Runs every stage's program under NCCL's semantics at their strictest: a rank's transfers run one at a time in
// posting order, each finishing only when the other end is at the head of its rank's queue too; a send waits
// for the compute of its tensor (and a gradient's copy for the previous gradient send, as the executor does), a
// forward or backward for the transfers of its input. Returns whether everything finished.
using ProgramOf = std::function<std::vector<PipeAction>(int stage, int num_stages, int num_micro)>;

bool finishes_with_in_order_transfers(int num_stages, int num_micro, const ProgramOf& program_of) {
  struct Stage {
    std::vector<PipeAction> computes, transfers;  // the program split by stream, each in posting order
    size_t next_compute = 0, next_transfer = 0;
    std::set<std::pair<PipeOp, int>> done;
    std::set<int> copied;  // gradients copied into their send buffer
  };
  std::vector<Stage> stages(num_stages);
  for (int p = 0; p < num_stages; ++p) {
    for (const PipeAction& a : program_of(p, num_stages, num_micro)) {
      const bool compute = a.op == PipeOp::kForward || a.op == PipeOp::kBackward;
      (compute ? stages[p].computes : stages[p].transfers).push_back(a);
      if (a.op == PipeOp::kSendGradient) stages[p].computes.push_back(a);  // the copy into the send buffer
    }
  }
  const auto done = [&](int p, PipeOp op, int m) { return stages[p].done.count({op, m}) > 0; };
  const auto compute_ready = [&](int p, const PipeAction& a) {
    const bool first = p == 0, last = p == num_stages - 1;
    switch (a.op) {
      case PipeOp::kForward: return first || done(p, PipeOp::kRecvActivation, a.micro);
      case PipeOp::kBackward:
        return last || (done(p, PipeOp::kRecvGradient, a.micro) && done(p, PipeOp::kSendActivation, a.micro));
      case PipeOp::kSendGradient: return a.micro == 0 || done(p, PipeOp::kSendGradient, a.micro - 1);
      case PipeOp::kRecvActivation:
      case PipeOp::kRecvGradient:
      case PipeOp::kSendActivation: return true;
    }
    return false;
  };
  // The other end of a transfer: its stage and what it posts there.
  const auto other_end = [](int p, const PipeAction& a) -> std::pair<int, PipeAction> {
    switch (a.op) {
      case PipeOp::kRecvActivation: return {p - 1, {PipeOp::kSendActivation, a.micro}};
      case PipeOp::kRecvGradient: return {p + 1, {PipeOp::kSendGradient, a.micro}};
      case PipeOp::kSendActivation: return {p + 1, {PipeOp::kRecvActivation, a.micro}};
      case PipeOp::kSendGradient: return {p - 1, {PipeOp::kRecvGradient, a.micro}};
      case PipeOp::kForward:
      case PipeOp::kBackward: break;
    }
    return {-1, a};
  };
  const auto sendable = [&](int p, const PipeAction& a) {
    if (a.op == PipeOp::kSendActivation) return done(p, PipeOp::kForward, a.micro);
    if (a.op == PipeOp::kSendGradient) return stages[p].copied.count(a.micro) > 0;
    return true;
  };
  for (bool progress = true; progress;) {
    progress = false;
    for (int p = 0; p < num_stages; ++p) {
      Stage& st = stages[p];
      while (st.next_compute < st.computes.size() && compute_ready(p, st.computes[st.next_compute])) {
        const PipeAction& a = st.computes[st.next_compute++];
        if (a.op == PipeOp::kSendGradient) {
          st.copied.insert(a.micro);
        } else {
          st.done.insert({a.op, a.micro});
        }
        progress = true;
      }
      if (st.next_transfer == st.transfers.size()) continue;
      const PipeAction& a = st.transfers[st.next_transfer];
      const auto [q, match] = other_end(p, a);
      Stage& peer = stages[q];
      if (peer.next_transfer == peer.transfers.size() || !(peer.transfers[peer.next_transfer] == match)) continue;
      if (!sendable(p, a) || !sendable(q, match)) continue;
      st.done.insert({a.op, a.micro});
      peer.done.insert({match.op, match.micro});
      ++st.next_transfer;
      ++peer.next_transfer;
      progress = true;
    }
  }
  for (const Stage& st : stages) {
    if (st.next_compute < st.computes.size() || st.next_transfer < st.transfers.size()) return false;
  }
  return true;
}

TEST(OneFOneB, ProgramsFinishWhenTransfersRunInPostingOrder) {
  for (int num_stages = 1; num_stages <= 4; ++num_stages) {
    for (int num_micro = 1; num_micro <= 8; ++num_micro) {
      EXPECT_TRUE(finishes_with_in_order_transfers(num_stages, num_micro, one_f_one_b_program))
          << num_stages << " stages, " << num_micro << " micro-batches";
    }
  }
  // The check catches a bad order: stage 0 posting each gradient receive ahead of the activation send before it,
  // while stage 1 posts its activation receives ahead, waits forever.
  const ProgramOf gradient_ahead = [](int stage, int num_stages, int num_micro) {
    std::vector<PipeAction> program = one_f_one_b_program(stage, num_stages, num_micro);
    for (size_t i = 1; stage == 0 && i < program.size(); ++i) {
      if (program[i].op == PipeOp::kRecvGradient && program[i - 1].op == PipeOp::kSendActivation) {
        std::swap(program[i], program[i - 1]);
      }
    }
    return program;
  };
  EXPECT_FALSE(finishes_with_in_order_transfers(2, 4, gradient_ahead));
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
