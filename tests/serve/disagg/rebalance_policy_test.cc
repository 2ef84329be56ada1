// The stability rule of `plm serve --rebalance` (a table of monitor windows and the move each one yields) and the
// choice of the rank that moves.
#include <gtest/gtest.h>

#include "serve/disagg/rebalance_policy.h"

namespace plm::serve::disagg {
namespace {

constexpr PoolRole D = PoolRole::kDecoder;
constexpr PoolRole E = PoolRole::kEncoder;

SplitSuggestion suggest(int encoders, int decoders) { return {.encoder_ranks = encoders, .decoder_ranks = decoders}; }
SplitSuggestion no_traffic() { return {}; }

TEST(RankToMove, TheHighestRankOfTheShrinkingPoolButNeverRankZeroOrAPoolsLast) {
  EXPECT_EQ(rank_to_move({D, D, D, E}, D), 2);
  EXPECT_EQ(rank_to_move({D, E, E}, E), 2);
  EXPECT_EQ(rank_to_move({D, E, D, E}, D), 2);
  EXPECT_EQ(rank_to_move({D, E, E, D}, E), 2);
  EXPECT_EQ(rank_to_move({D, E, E}, D), std::nullopt);  // the last decoder
  EXPECT_EQ(rank_to_move({D, D, E}, E), std::nullopt);  // the last encoder
  EXPECT_EQ(rank_to_move({D, D, E}, D), 1);
}

TEST(RebalancePolicy, MovesOneRankOnceTheSuggestionHoldsForKWindows) {
  struct Window {
    SplitSuggestion suggestion;
    std::optional<int> want_rank;  // the move it yields (to the pool the suggestion grows)
    int want_streak;
  };
  const std::vector<PoolRole> roles = {D, D, D, E};  // 1 encoder : 3 decoders
  const Window windows[] = {
      {suggest(3, 1), std::nullopt, 1},
      {suggest(2, 2), std::nullopt, 2},   // still more encoders: the count goes on
      {no_traffic(), std::nullopt, 0},    // an idle window starts it again
      {suggest(2, 2), std::nullopt, 1},
      {suggest(1, 3), std::nullopt, 0},   // the current split: again
      {suggest(2, 2), std::nullopt, 1},
      {suggest(2, 2), std::nullopt, 2},
      {suggest(3, 1), 2, 0},              // third in a row: rank 2 moves, and the count restarts
      {suggest(3, 1), std::nullopt, 1},
  };
  RebalancePolicy policy(3);
  for (size_t i = 0; i < std::size(windows); ++i) {
    const std::optional<RankMove> move = policy.observe(windows[i].suggestion, roles);
    EXPECT_EQ(move.has_value(), windows[i].want_rank.has_value()) << "window " << i;
    if (move && windows[i].want_rank) {
      EXPECT_EQ(move->rank, *windows[i].want_rank) << "window " << i;
      EXPECT_EQ(move->to, E) << "window " << i;
    }
    EXPECT_EQ(policy.streak(), windows[i].want_streak) << "window " << i;
  }
}

TEST(RebalancePolicy, ADirectionChangeRestartsTheCount) {
  RebalancePolicy policy(2);
  const std::vector<PoolRole> roles = {D, D, E, E};  // 2 : 2
  EXPECT_EQ(policy.observe(suggest(3, 1), roles), std::nullopt);
  EXPECT_EQ(policy.observe(suggest(1, 3), roles), std::nullopt);  // now fewer encoders: a count of 1
  EXPECT_EQ(policy.streak(), 1);
  const std::optional<RankMove> move = policy.observe(suggest(1, 3), roles);
  ASSERT_TRUE(move.has_value());
  EXPECT_EQ(move->rank, 3);
  EXPECT_EQ(move->to, D);
}

TEST(RebalancePolicy, NeverEmptiesAPoolNorMovesRankZero) {
  RebalancePolicy policy(1);
  EXPECT_EQ(policy.observe(suggest(2, 1), {D, D, E}), (std::optional<RankMove>{{.rank = 1, .to = E}}));
  EXPECT_EQ(policy.observe(suggest(2, 1), {D, E, E}), std::nullopt);  // rank 0 is the last decoder
  EXPECT_EQ(policy.observe(suggest(1, 2), {D, E, E}), (std::optional<RankMove>{{.rank = 2, .to = D}}));
}

}  // namespace
}  // namespace plm::serve::disagg
