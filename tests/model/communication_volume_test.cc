// Communication volume per token of TP and PP decode against the analytic counts
// (spec/anchors_training.md §2.5: two all-reduces of b*s*h per layer in forward; plus plm's vocab-parallel
// embedding all-reduce and LM-head gather; PP: one activation send per stage boundary, the logits
// broadcast, and the stages' status agreement).
#include <gtest/gtest.h>

#include <mutex>

#include "distributed/counting_communicator.h"
#include "distributed/local_communicator.h"
#include "distributed/process_groups.h"
#include "model/plm_model.h"

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

}  // namespace
}  // namespace plm::model
