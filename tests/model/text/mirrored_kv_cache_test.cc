// MirroredKvCache against the PagedKvCache it mirrors: told PagedKvCache::tables_for before every batch, its
// append() books the same rows and tables through growth, prefix sharing, frees and block reuse; a dense
// cache's tables are its slots; check() names a missing or short table.
#include "model/text/mirrored_kv_cache.h"

#include <gtest/gtest.h>

#include <vector>

#include "model/text/paged_kv_cache.h"
#include "tests/core/test_util.h"
#include "tests/model/model_test_util.h"

namespace plm::model {
namespace {

using testing::FailsWith;

constexpr KvLayout kLayout{.num_layers = 1, .num_kv_heads = 1, .head_dim = 2};

std::vector<int32_t> values(Tensor t) {
  std::vector<int32_t> v(static_cast<size_t>(t.numel()));
  for (int64_t i = 0; i < t.numel(); ++i) v[i] = t.data_as<int32_t>()[i];
  return v;
}

// Runs `batch` on both caches (the mirror told the leader's tables first) and compares what append() books.
void append_both(PagedKvCache& leader, MirroredKvCache& mirror, const TokenBatch& batch) {
  ASSERT_TRUE(leader.check(batch).ok());
  mirror.set_tables(batch, leader.tables_for(batch));
  const absl::Status ok = mirror.check(batch);
  ASSERT_TRUE(ok.ok()) << ok;
  const KvStep expected = leader.append(batch);
  const KvStep got = mirror.append(batch);
  EXPECT_EQ(values(got.slots), values(expected.slots));
  EXPECT_EQ(values(got.block_tables), values(expected.block_tables));
  EXPECT_EQ(values(got.query_starts), values(expected.query_starts));
  EXPECT_EQ(values(got.kv_lens), values(expected.kv_lens));
  EXPECT_EQ(got.max_query_len, expected.max_query_len);
}

TEST(MirroredKvCache, BooksWhatThePagedCacheBooks) {
  PagedKvCache leader(kLayout, {.block_size = 4, .num_blocks = 8, .max_sequence_len = 32}, DType::kF32, Device::cpu());
  MirroredKvCache mirror(kLayout, 8, 4, 32, DType::kF32, Device::cpu());
  ASSERT_TRUE(leader.add_sequence(1).ok());
  ASSERT_TRUE(leader.add_sequence(2).ok());
  append_both(leader, mirror, {{{1, 0, 9}, {2, 0, 3}}});  // several new blocks in one batch
  append_both(leader, mirror, {{{1, 9, 1}, {2, 3, 2}}});  // sequence 2 crosses into a new block
  // Sequence 3 starts on sequence 1's two full blocks; sequence 2 leaves and its blocks are reused.
  const std::vector<int32_t> prefix(leader.block_table(1).begin(), leader.block_table(1).begin() + 2);
  ASSERT_TRUE(leader.add_sequence(3, prefix).ok());
  leader.free_sequence(2);
  append_both(leader, mirror, {{{3, 8, 5}, {1, 10, 1}}});
  EXPECT_EQ(mirror.tables_for({{{3, 8, 5}}}), leader.tables_for({{{3, 13, 0}}}));
}

TEST(MirroredKvCache, DenseTablesAreTheSlots) {
  const DenseKvCache dense(kLayout, 3, 16, DType::kF32, Device::cpu());
  EXPECT_EQ(dense.tables_for({{{2, 0, 4}, {0, 5, 1}}}), (std::vector<std::vector<int32_t>>{{2}, {0}}));
}

TEST(MirroredKvCache, CheckNamesMissingShortAndForeignTables) {
  MirroredKvCache mirror(kLayout, 4, 4, 12, DType::kF32, Device::cpu());
  const TokenBatch batch{{{5, 0, 6}}};
  EXPECT_THAT(mirror.check(batch), FailsWith("no block table for sequence 5"));
  mirror.set_tables(batch, {{0}});
  EXPECT_THAT(mirror.check(batch), FailsWith("holds 1 blocks, short of 6 tokens"));
  mirror.set_tables(batch, {{0, 9}});
  EXPECT_THAT(mirror.check(batch), FailsWith("block 9 of sequence 5 outside the pool of 4"));
  EXPECT_THAT(mirror.check({{{5, 8, 6}}}), FailsWith("would hold 14 tokens, past 12"));
}

}  // namespace
}  // namespace plm::model
