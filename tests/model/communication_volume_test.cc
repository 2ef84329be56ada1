// Communication volume per token of TP and PP decode, and per micro-batch of TP training, against the analytic
// counts (spec/anchors_training.md §2.5: two all-reduces of b*s*h per layer in forward and two in backward, full
// recomputation replaying the forward's two; plus plm's vocab-parallel embedding all-reduce and LM-head gather
// (decode) or vocab-parallel loss (training); PP: one activation send per stage boundary, the logits broadcast,
// and the stages' status agreement).
#include <gtest/gtest.h>

#include <algorithm>
#include <mutex>

#include "distributed/counting_communicator.h"
#include "distributed/local_communicator.h"
#include "distributed/process_groups.h"
#include "model/flat_parameters.h"
#include "model/plm_model.h"
#include "model/training_pass.h"
#include "tests/model/training_samples.h"

namespace plm::model {
namespace {

const std::string kModel = std::string(PLM_SOURCE_DIR) + "/tests/fixtures/models/cls_tied";

struct Volume {
  std::map<std::string, int64_t> tp_bytes, pp_bytes;
};

// One decode step (one new token after a 5-token prompt) on a tp x pp layout; the volumes of rank 0.
Volume decode_step_volume(int tp, int pp) {
  Volume v;
  std::mutex mutex;
  distributed::run_local_ranks(tp * pp, [&](distributed::Communicator& world) {
    absl::StatusOr<distributed::ProcessGroups> groups =
        distributed::ProcessGroups::create(world.split(0, world.rank(), "world"), tp, pp);
    ASSERT_TRUE(groups.ok());
    distributed::CountingCommunicator tp_count(*groups->tp), pp_count(*groups->pp);
    absl::StatusOr<std::unique_ptr<PlmModel>> model = PlmModel::load(kModel, Device::cpu(), {&tp_count, &pp_count});
    ASSERT_TRUE(model.ok()) << model.status();
    std::unique_ptr<KvCache> cache = (*model)->make_cache(1, 8);
    ASSERT_TRUE((*model)->forward({128000, 9906, 1917, 13, 220}, {{{0, 0, 5}}}, {}, *cache, false).ok());
    tp_count.reset();
    pp_count.reset();
    ASSERT_TRUE((*model)->forward({791}, {{{0, 5, 1}}}, {}, *cache, false).ok());
    if (world.rank() == 0) {
      std::lock_guard<std::mutex> lock(mutex);
      v.tp_bytes = tp_count.bytes();
      v.pp_bytes = pp_count.bytes();
    }
  });
  return v;
}

TEST(CommunicationVolume, TensorParallelDecodeMatchesTheFormula) {
  // cls_tied: hidden 32, 2 layers, vocab 128256, f32 activations; TP = 2, one token.
  const int64_t h = 32, layers = 2, vocab = 128256, bytes = 4, tp = 2;
  const Volume v = decode_step_volume(static_cast<int>(tp), 1);
  // 2 all-reduces per layer (after o_proj and down_proj) + 1 for the vocab-parallel embedding, each of
  // one token's hidden state.
  EXPECT_EQ(v.tp_bytes.at("all_reduce"), (2 * layers + 1) * h * bytes);
  // The LM head gathers this rank's vocabulary shard of the logits.
  EXPECT_EQ(v.tp_bytes.at("all_gather"), vocab / tp * bytes);
  std::printf("[volume] TP=2 decode, per token per rank: all-reduce payload %lld B (= (2L+1) h b), logits gather %lld B\n",
              static_cast<long long>(v.tp_bytes.at("all_reduce")), static_cast<long long>(v.tp_bytes.at("all_gather")));
}

TEST(CommunicationVolume, PipelineDecodeMatchesTheFormula) {
  const int64_t h = 32, vocab = 128256, bytes = 4;
  const Volume v = decode_step_volume(1, 2);
  // Stage 0 sends one token's hidden state to stage 1; the logits row is broadcast back. Before the send the
  // stages agree that every one accepted the batch: one i32 all-reduce (distributed/status_agreement.h).
  EXPECT_EQ(v.pp_bytes.at("send"), h * bytes);
  EXPECT_EQ(v.pp_bytes.at("broadcast"), vocab * bytes);
  EXPECT_EQ(v.pp_bytes.at("all_reduce"), 4);
}

// The TP group's payload bytes (rank 0) of one training pass over a micro-batch holding the image and text samples.
std::map<std::string, int64_t> training_pass_volume(int tp, Recompute recompute, int64_t* tokens, int64_t* labelled,
                                                    int64_t* tiles) {
  std::map<std::string, int64_t> bytes;
  std::mutex mutex;
  const testing::Sample image = testing::load_sample("image"), text = testing::load_sample("text");
  std::vector<OwnedTensor> storage;
  const TrainingBatch batch = testing::pack({&image, &text}, storage);
  *tokens = static_cast<int64_t>(batch.ids.size());
  *labelled = static_cast<int64_t>(std::count_if(batch.targets.begin(), batch.targets.end(),
                                                 [](int32_t target) { return target != kIgnoreTarget; }));
  *tiles = batch.image_pixels.size(0);
  distributed::run_local_ranks(tp, [&](distributed::Communicator& group) {
    distributed::CountingCommunicator counted(group);
    absl::StatusOr<std::unique_ptr<PlmModel>> model =
        PlmModel::load(kModel, Device::cpu(), {.tp = &counted}, {.for_training = true});
    ASSERT_TRUE(model.ok()) << model.status();
    FlatParameters grads((*model)->weights(), DType::kF32, Device::cpu());
    counted.reset();
    ASSERT_TRUE(train_forward_backward(**model, grads.views(), batch, 0.01f, {.recompute = recompute}).ok());
    if (group.rank() == 0) {
      std::lock_guard<std::mutex> lock(mutex);
      bytes = counted.bytes();
    }
  });
  return bytes;
}

TEST(CommunicationVolume, TensorParallelTrainingPassMatchesTheFormula) {
  // cls_tied at TP = 2: hidden H 32, L = 2 decoder layers, a vision tower of Lv = 2 blocks (D 32, S = 17 tokens per
  // tile: 16 patches + CLS) split over the 2 ranks (2 heads), f32 (b = 4 bytes). Per micro-batch of T tokens, N of
  // them labelled (only those reach the head), and n tiles, the all-reduce payload per rank is
  //   (1 + 2L + 2L) T H b         embedding, 2 per layer forward, 2 per layer backward
  //   + N H b                     the loss' dhidden of the labelled rows
  //   + 4 Lv n S D b              the tower: 2 per block forward, 2 backward
  //   + N 4                       the loss: each labelled row's target logit (f32)
  // and the all-gather payload N 4 (each rank's shard log-sum-exp per row, f32); the logits are never gathered.
  // Full recomputation replays the forward's all-reduces in the backward: + 2 L T H b + 2 Lv n S D b.
  const int64_t h = 32, layers = 2, vision_blocks = 2, d = 32, seq = 17, b = 4;
  for (const Recompute recompute : {Recompute::kNone, Recompute::kFull}) {
    int64_t t = 0, labelled = 0, n = 0;
    const std::map<std::string, int64_t> bytes = training_pass_volume(2, recompute, &t, &labelled, &n);
    const int64_t layer = t * h * b, block = n * seq * d * b;
    const int64_t replayed = recompute == Recompute::kFull ? 2 * layers * layer + 2 * vision_blocks * block : 0;
    EXPECT_EQ(bytes.at("all_reduce"),
              (4 * layers + 1) * layer + labelled * h * b + 4 * vision_blocks * block + labelled * 4 + replayed)
        << recompute_text(recompute);
    EXPECT_EQ(bytes.at("all_gather"), labelled * 4) << recompute_text(recompute);
    EXPECT_EQ(bytes.size(), 2u);
    std::printf("[volume] TP=2 training pass, T=%lld tokens (%lld labelled), %lld tiles, recompute %s: all-reduce "
                "payload %lld B, all-gather %lld B per rank\n",
                static_cast<long long>(t), static_cast<long long>(labelled), static_cast<long long>(n), std::string(recompute_text(recompute)).c_str(),
                static_cast<long long>(bytes.at("all_reduce")), static_cast<long long>(bytes.at("all_gather")));
  }
}

}  // namespace
}  // namespace plm::model
