// PagedKvSpace on the tiny model's cache: a sequence is admitted with its first chunk's blocks only and grows
// until the pool is out (then grow() refuses and the blocks it promised are found by the step); release gives the
// blocks back; with prefix caching, a finished sequence's full blocks are found again (never its last token),
// shared, and evicted when a sequence needs the room; a pool too small for one sequence is refused with its
// arithmetic.
#include "serve/paged_kv_space.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <numeric>

#include "tests/serve/serve_fixture.h"

namespace plm::serve {
namespace {

constexpr int64_t kBlock = 16;

std::unique_ptr<PagedKvSpace> make_space(int64_t num_blocks, bool prefix_caching) {
  const model::PlmModel& model = *testing::tiny_model().model;
  const int64_t bytes =
      num_blocks * static_cast<int64_t>(model::PagedKvCache::block_bytes(model.kv_layout(), kBlock, model.dtype()));
  absl::StatusOr<std::unique_ptr<PagedKvSpace>> space = PagedKvSpace::create(
      model, {.kind = KvCacheKind::kPaged, .bytes = bytes, .block_tokens = kBlock, .prefix_caching = prefix_caching},
      /*max_num_seqs=*/4, /*context_tokens=*/512);
  PLM_CHECK(space.ok()) << space.status().message();
  return std::move(*space);
}

// A text sequence of `length` tokens 100, 101, ... (then `first` instead of 100) that may grow to `max_total`.
Sequence text_sequence(const std::string& id, int64_t length, int64_t max_total, int32_t first = 100) {
  Sequence seq;
  seq.id = id;
  seq.tokens.resize(static_cast<size_t>(length));
  std::iota(seq.tokens.begin(), seq.tokens.end(), 100);
  seq.tokens[0] = first;
  seq.num_prompt_tokens = length;
  seq.max_total_tokens = max_total;
  return seq;
}

// Runs tokens [num_computed, end) of each sequence through the model in one step and reports them computed.
void run_step(PagedKvSpace& space, const std::vector<std::pair<Sequence*, int64_t>>& chunks) {
  model::StepBatch batch;
  for (const auto& [seq, end] : chunks) {
    batch.chunks.push_back({.sequence = seq->slot,
                            .start = seq->num_computed,
                            .ids = {seq->tokens.begin() + seq->num_computed, seq->tokens.begin() + end}});
  }
  const absl::StatusOr<model::StepOutput> out = testing::tiny_model().model->step(batch, space.cache());
  ASSERT_TRUE(out.ok()) << out.status();
  for (const auto& [seq, end] : chunks) {
    seq->num_computed = end;
    space.computed(seq->slot, *seq);
  }
}

TEST(PagedKvSpace, AdmitsWithTheFirstChunksBlocksAndGrowsUntilThePoolIsOut) {
  const std::unique_ptr<PagedKvSpace> space = make_space(6, /*prefix_caching=*/false);
  EXPECT_EQ(space->max_sequence_tokens(), 6 * kBlock);
  Sequence a = text_sequence("a", 40, 50), b = text_sequence("b", 48, 60);
  EXPECT_EQ(space->cached_prefix(a), 0);
  a.slot = space->admit(a, 0, 20).value();
  EXPECT_EQ(space->usage().blocks_used, 2);
  EXPECT_TRUE(space->grow(a.slot, 40));
  EXPECT_EQ(space->usage().blocks_used, 3);
  b.slot = space->admit(b, 0, 48).value();
  KvUsage u = space->usage();
  EXPECT_EQ(u.blocks_used, 6);
  EXPECT_EQ(u.blocks_free, 0);
  EXPECT_EQ(u.num_sequences, 2);
  EXPECT_FALSE(space->grow(a.slot, 49)) << "a fourth block for a: the pool is out";
  Sequence c = text_sequence("c", 4, 8);
  EXPECT_FALSE(space->admit(c, 0, 4).has_value());

  run_step(*space, {{&a, 40}, {&b, 48}});  // the forward finds the promised blocks
  u = space->usage();
  EXPECT_EQ(u.blocks_used, 6);
  EXPECT_EQ(u.filled_tokens, 88);
  space->release(b.slot);
  EXPECT_EQ(space->usage().blocks_free, 3);
  EXPECT_TRUE(space->grow(a.slot, 49));
  space->release(a.slot);
  u = space->usage();
  EXPECT_EQ(u.blocks_used, 0);
  EXPECT_EQ(u.blocks_cached, 0);
  EXPECT_EQ(u.blocks_free, 6);
  EXPECT_EQ(u.num_sequences, 0);
}

TEST(PagedKvSpace, PrefixCachingSharesFullBlocksAndEvictsWhenTheRoomIsNeeded) {
  const std::unique_ptr<PagedKvSpace> space = make_space(6, /*prefix_caching=*/true);
  Sequence a = text_sequence("a", 40, 48);
  a.slot = space->admit(a, space->cached_prefix(a), 40).value();
  run_step(*space, {{&a, 40}});
  space->release(a.slot);
  KvUsage u = space->usage();
  EXPECT_EQ(u.blocks_cached, 2) << "a's two full blocks; its partial third is free";
  EXPECT_EQ(u.blocks_free, 4);
  EXPECT_EQ(u.blocks_used, 0);

  // The same tokens: both full blocks; the first 32 tokens only: one block (its last token must run).
  Sequence b = text_sequence("b", 40, 48), head = text_sequence("head", 32, 40), other = text_sequence("o", 40, 48, 7);
  EXPECT_EQ(space->cached_prefix(head), kBlock);
  EXPECT_EQ(space->cached_prefix(other), 0) << "another first token changes every block";
  const int64_t cached = space->cached_prefix(b);
  EXPECT_EQ(cached, 2 * kBlock);
  b.slot = space->admit(b, cached, 40).value();
  b.num_computed = cached;
  u = space->usage();
  EXPECT_EQ(u.blocks_used, 3);
  EXPECT_EQ(u.blocks_cached, 0);
  EXPECT_EQ(u.prefix_cache.hit_tokens, 32);
  EXPECT_EQ(u.prefix_cache.queried_tokens, 40 + 40);
  run_step(*space, {{&b, 40}});
  space->release(b.slot);
  EXPECT_EQ(space->usage().blocks_cached, 2);

  // A sequence that needs the whole pool evicts the cached blocks.
  Sequence big = text_sequence("big", 90, 96, 8);
  big.slot = space->admit(big, space->cached_prefix(big), 90).value();
  u = space->usage();
  EXPECT_EQ(u.blocks_used, 6);
  EXPECT_EQ(u.blocks_cached, 0);
  EXPECT_EQ(u.prefix_cache.evictions, 2);
  Sequence again = text_sequence("again", 40, 48);
  EXPECT_EQ(space->cached_prefix(again), 0);
}

TEST(PagedKvSpace, APoolTooSmallForOneSequenceIsRefusedWithItsArithmetic) {
  const model::PlmModel& model = *testing::tiny_model().model;
  const absl::StatusOr<std::unique_ptr<PagedKvSpace>> space =
      PagedKvSpace::create(model, {.kind = KvCacheKind::kPaged, .bytes = 3000, .block_tokens = kBlock}, 4, 512);
  EXPECT_EQ(space.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(space.status().message()),
              ::testing::HasSubstr("the paged KV cache of 3000 bytes holds 0 blocks of 16 tokens (4096 bytes each): "
                                   "0 tokens; give at least 16"));
}

}  // namespace
}  // namespace plm::serve
