// The pool split suggestion (a table of work mixes) and the layout's checks.
#include <gtest/gtest.h>

#include "serve/disagg/pool_layout.h"
#include "serve/disagg/pool_monitor.h"

namespace plm::serve::disagg {
namespace {

TEST(SuggestSplit, RanksFollowTheWorkInWholeDecoderReplicas) {
  struct Case {
    double encoder_s, decoder_s;
    int world, tp;
    int want_encoders, want_decoders;
  };
  const Case cases[] = {
      {3, 1, 4, 1, 3, 1},    // image-heavy: three encoders
      {1, 3, 4, 1, 1, 3},    // text-heavy
      {1, 1, 4, 2, 2, 2},    // even, decoders in replicas of 2
      {1, 1, 5, 2, 3, 2},    // 2.5 encoders round to 3, leaving one decoder replica of 2
      {10, 0, 4, 2, 2, 2},   // no decoder work: still one decoder replica
      {0, 10, 4, 1, 1, 3},   // no encoder work: still one encoder
      {1, 100, 8, 1, 1, 7},
  };
  for (const Case& c : cases) {
    const SplitSuggestion s = suggest_split(c.encoder_s, c.decoder_s, c.world, c.tp);
    EXPECT_EQ(s.encoder_ranks, c.want_encoders) << c.encoder_s << " : " << c.decoder_s << " over " << c.world;
    EXPECT_EQ(s.decoder_ranks, c.want_decoders) << c.encoder_s << " : " << c.decoder_s << " over " << c.world;
  }
  EXPECT_EQ(suggest_split(0, 0, 4, 1).encoder_ranks, 0);  // no work: nothing to suggest
}

TEST(MeasureCosts, SplitsTheForwardIntoPrefillAndDecode) {
  EncoderPoolStats e;
  e.encoded = {10, 4};
  e.encode_s = {1.0, 0.2};
  EngineStats d;
  d.forward_s = 3.0;
  d.decode_forward_s = 1.0;
  d.decode_step_tokens = 100;   // 10 ms per decoded token
  d.decode_tokens = 150;        // 50 decoded in mixed steps: 0.5 s of the other 2 s
  d.prompt_tokens_computed = 300;
  const UnitCosts c = measure_costs(e, d);
  EXPECT_DOUBLE_EQ(c.tile_s, 0.1);
  EXPECT_DOUBLE_EQ(c.frame_s, 0.05);
  EXPECT_DOUBLE_EQ(c.decode_token_s, 0.01);
  EXPECT_DOUBLE_EQ(c.prefill_token_s, 1.5 / 300);
}

TEST(PoolLayout, RanksAndRolesWithTheArithmeticInErrors) {
  const absl::StatusOr<PoolLayout> l = PoolLayout::create({.encoder_ranks = 2, .decoder_ranks = 4, .decoder_tp = 2}, 6);
  ASSERT_TRUE(l.ok()) << l.status();
  EXPECT_EQ(l->num_fronts(), 2);
  EXPECT_TRUE(l->is_front(0));
  EXPECT_FALSE(l->is_front(1));
  EXPECT_TRUE(l->is_front(2));
  EXPECT_EQ(l->role(4), PoolRole::kEncoder);
  EXPECT_EQ(l->encoder_rank(1), 5);
  EXPECT_EQ(l->decoder_replica(3), 1);
  EXPECT_EQ(PoolLayout::create({.encoder_ranks = 2, .decoder_ranks = 2}, 3).status().message(),
            "--encoder-ranks (2) + --decoder-ranks (2) = 4 ranks, but the job has 3 (launch with mpirun -n 4)");
  EXPECT_EQ(PoolLayout::create({.encoder_ranks = 1, .decoder_ranks = 3, .decoder_tp = 2}, 4).status().message(),
            "--decoder-ranks (3) is not a multiple of --decoder-tp (2)");
}

}  // namespace
}  // namespace plm::serve::disagg
