// PagedKvCache bookkeeping (no forward): blocks handed out as sequences grow, blocks_needed, check()'s errors
// leaving the cache unchanged, prefix sharing of full blocks with reference counts, retain/release by the
// caller, fork copying only the partial last block, and the pool refilling as sequences are freed.
#include "model/text/paged_kv_cache.h"

#include <gtest/gtest.h>

#include <vector>

#include "core/kernels/ops.h"
#include "tests/core/test_util.h"
#include "tests/model/model_test_util.h"

namespace plm::model {
namespace {

using testing::FailsWith;

constexpr KvLayout kLayout{.num_layers = 2, .num_kv_heads = 2, .head_dim = 4};

PagedKvCache make_cache(int64_t num_blocks, int64_t block_size = 4, int64_t max_len = 64) {
  return PagedKvCache(kLayout, {.block_size = block_size, .num_blocks = num_blocks, .max_sequence_len = max_len},
                      DType::kF32, Device::cpu());
}

// Appends `length` tokens to each sequence in one batch (check() first), as a forward would.
KvStep append(PagedKvCache& cache, const std::vector<std::pair<SequenceId, int64_t>>& chunks) {
  TokenBatch batch;
  for (const auto& [id, length] : chunks) batch.chunks.push_back({id, cache.length(id), length});
  const absl::Status ok = cache.check(batch);
  EXPECT_TRUE(ok.ok()) << ok;
  return cache.append(batch);
}

std::vector<int32_t> values(Tensor t) {
  std::vector<int32_t> v(static_cast<size_t>(t.numel()));
  for (int64_t i = 0; i < t.numel(); ++i) v[i] = t.data_as<int32_t>()[i];
  return v;
}

TEST(PagedKvCache, SizesItsPoolByBytes) {
  // 2 (k, v) x 2 layers x 4 tokens x 2 heads x 4 dims x 4 bytes.
  EXPECT_EQ(PagedKvCache::block_bytes(kLayout, 4, DType::kF32), 512u);
  EXPECT_EQ(PagedKvCache::blocks_for_bytes(kLayout, 4, DType::kF32, 512 * 10 + 511), 10);
  const PagedKvCache cache = make_cache(10);
  EXPECT_EQ(cache.nbytes(), 5120u);
  EXPECT_EQ(cache.keys(1).shape(), Shape({10, 4, 2, 4}));
  EXPECT_EQ(cache.num_free_blocks(), 10);
}

TEST(PagedKvCache, HandsOutBlocksAsSequencesGrowAndTakesThemBack) {
  PagedKvCache cache = make_cache(6);
  ASSERT_TRUE(cache.add_sequence(7).ok());
  ASSERT_TRUE(cache.add_sequence(3).ok());
  EXPECT_EQ(cache.blocks_needed(7, 5), 2);
  EXPECT_EQ(cache.blocks_needed(TokenBatch{{{7, 0, 5}, {3, 0, 1}}}), 3);

  // A prefill of 5 tokens and one of 1 token: rows slot = block * 4 + offset, tables padded with -1.
  const KvStep step = append(cache, {{7, 5}, {3, 1}});
  EXPECT_EQ(values(step.slots), (std::vector<int32_t>{0, 1, 2, 3, 4, 8}));
  EXPECT_EQ(values(step.block_tables), (std::vector<int32_t>{0, 1, 2, -1}));
  EXPECT_EQ(values(step.query_starts), (std::vector<int32_t>{0, 5, 6}));
  EXPECT_EQ(values(step.kv_lens), (std::vector<int32_t>{5, 1}));
  EXPECT_EQ(step.max_query_len, 5);
  EXPECT_EQ(cache.length(7), 5);
  EXPECT_EQ(cache.num_used_blocks(), 3);
  EXPECT_TRUE(cache.is_full(0));
  EXPECT_FALSE(cache.is_full(1));

  // Decode: 7 fills its second block without a new one, 3 too.
  EXPECT_EQ(cache.blocks_needed(7, 3), 0);
  const KvStep decode = append(cache, {{7, 1}, {3, 1}});
  EXPECT_EQ(values(decode.slots), (std::vector<int32_t>{5, 9}));
  EXPECT_EQ(cache.num_used_blocks(), 3);

  cache.free_sequence(7);
  EXPECT_FALSE(cache.contains(7));
  EXPECT_EQ(cache.num_free_blocks(), 5);
  EXPECT_EQ(cache.ref_count(0), 0);
  // The most recently freed block (7's last) comes back first.
  ASSERT_TRUE(cache.add_sequence(9).ok());
  append(cache, {{9, 1}});
  EXPECT_EQ(cache.block_table(9)[0], 1);
}

TEST(PagedKvCache, CheckRejectsWhatCannotRunAndChangesNothing) {
  PagedKvCache cache = make_cache(3, 4, 12);
  ASSERT_TRUE(cache.add_sequence(1).ok());
  ASSERT_TRUE(cache.add_sequence(2).ok());
  append(cache, {{1, 2}});
  EXPECT_THAT(cache.check({{{5, 0, 1}}}), FailsWith("no sequence 5"));
  EXPECT_THAT(cache.check({{{1, 0, 1}}}), FailsWith("chunk of sequence 1 starts at 0", "has 2 tokens cached"));
  EXPECT_THAT(cache.check({{{1, 2, 0}}}), FailsWith("with 0 tokens"));
  EXPECT_THAT(cache.check({{{1, 2, 1}, {1, 3, 1}}}), FailsWith("sequence 1 has two chunks"));
  EXPECT_EQ(cache.check({{{1, 2, 11}}}).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(cache.check({{{1, 2, 11}}}), FailsWith("sequence 1 of 13 tokens exceeds the KV cache length 12"));
  // 1 needs 2 more blocks for 8 tokens, 2 needs 1: 3 > 2 free.
  const absl::Status full = cache.check({{{1, 2, 8}, {2, 0, 1}}});
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(full, FailsWith("the batch needs 3 new KV blocks; 2 of 3 are free"));
  EXPECT_EQ(cache.length(1), 2);
  EXPECT_EQ(cache.num_free_blocks(), 2);
  EXPECT_TRUE(cache.check({{{1, 2, 6}, {2, 0, 4}}}).ok());
}

TEST(PagedKvCache, SharesFullPrefixBlocksByReference) {
  PagedKvCache cache = make_cache(8);
  ASSERT_TRUE(cache.add_sequence(1).ok());
  append(cache, {{1, 10}});  // blocks 0, 1 full, 2 holds 2 tokens
  const std::vector<int32_t> table(cache.block_table(1).begin(), cache.block_table(1).end());
  ASSERT_EQ(table, (std::vector<int32_t>{0, 1, 2}));

  // Only full blocks in use can seed a sequence.
  EXPECT_THAT(cache.add_sequence(2, std::vector<int32_t>{0, 2}), FailsWith("prefix block 2 of sequence 2"));
  EXPECT_THAT(cache.add_sequence(2, std::vector<int32_t>{5}), FailsWith("prefix block 5"));
  EXPECT_THAT(cache.add_sequence(1), FailsWith("sequence 1 is already"));
  EXPECT_FALSE(cache.contains(2));

  ASSERT_TRUE(cache.add_sequence(2, std::vector<int32_t>{0, 1}).ok());
  EXPECT_EQ(cache.length(2), 8);
  EXPECT_EQ(cache.ref_count(0), 2);
  EXPECT_EQ(cache.num_used_blocks(), 3);
  // Sequence 2 appends into a block of its own.
  const KvStep step = append(cache, {{2, 1}});
  EXPECT_EQ(values(step.slots), (std::vector<int32_t>{12}));
  EXPECT_EQ(values(step.block_tables), (std::vector<int32_t>{0, 1, 3}));

  // A prefix cache holding block 1: freeing both sequences keeps it, and it can seed a new sequence.
  cache.retain_block(1);
  cache.free_sequence(1);
  cache.free_sequence(2);
  EXPECT_EQ(cache.ref_count(0), 0);
  EXPECT_EQ(cache.ref_count(1), 1);
  EXPECT_TRUE(cache.is_full(1));
  EXPECT_EQ(cache.num_used_blocks(), 1);
  ASSERT_TRUE(cache.add_sequence(3, std::vector<int32_t>{1}).ok());
  cache.release_block(1);
  EXPECT_EQ(cache.ref_count(1), 1);
  cache.free_sequence(3);
  EXPECT_EQ(cache.num_free_blocks(), 8);
  EXPECT_FALSE(cache.is_full(1)) << "a freed block forgets its rows";
}

TEST(PagedKvCache, ForkSharesFullBlocksAndCopiesThePartialOne) {
  PagedKvCache cache = make_cache(5);
  ASSERT_TRUE(cache.add_sequence(1).ok());
  append(cache, {{1, 6}});  // block 0 full, block 1 holds 2 tokens
  // Mark the partial block's rows so the copy shows.
  for (int l = 0; l < kLayout.num_layers; ++l) {
    fill(cache.keys(l).select(0, 1), 1.5f + static_cast<float>(l));
    fill(cache.values(l).select(0, 1), -2.0f);
  }
  ASSERT_TRUE(cache.fork(1, 2).ok());
  EXPECT_EQ(cache.length(2), 6);
  const std::vector<int32_t> child(cache.block_table(2).begin(), cache.block_table(2).end());
  ASSERT_EQ(child, (std::vector<int32_t>{0, 2}));
  EXPECT_EQ(cache.ref_count(0), 2);
  EXPECT_EQ(cache.ref_count(1), 1);
  for (int l = 0; l < kLayout.num_layers; ++l) {
    EXPECT_EQ(plm::testing::to_vector(cache.keys(l).select(0, 2)), plm::testing::to_vector(cache.keys(l).select(0, 1)));
    EXPECT_EQ(plm::testing::to_vector(cache.values(l).select(0, 2)),
              plm::testing::to_vector(cache.values(l).select(0, 1)));
  }
  // Both go on in their own blocks.
  const KvStep step = append(cache, {{1, 1}, {2, 1}});
  EXPECT_EQ(values(step.slots), (std::vector<int32_t>{6, 10}));
  EXPECT_THAT(cache.fork(3, 4), FailsWith("no sequence 3"));
  EXPECT_THAT(cache.fork(1, 2), FailsWith("sequence 2 is already"));
  // No free block left for a partial block's copy after these.
  ASSERT_TRUE(cache.fork(1, 3).ok());
  ASSERT_TRUE(cache.fork(1, 4).ok());
  EXPECT_EQ(cache.num_free_blocks(), 0);
  EXPECT_EQ(cache.fork(1, 5).code(), absl::StatusCode::kResourceExhausted);
  for (const SequenceId id : {1, 2, 3, 4}) cache.free_sequence(id);
  EXPECT_EQ(cache.num_free_blocks(), 5);
}

}  // namespace
}  // namespace plm::model
