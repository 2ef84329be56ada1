// PrefixCache over a small model::PagedKvCache (bookkeeping only, one layer of one value per token): lookups stop
// at the first unknown hash; a block becomes evictable when only the cache holds it and stops being so when a
// sequence takes it; eviction goes least recently released first and a sequence's last block first; a request
// for more room than eviction can give evicts nothing; a second block with a known hash stays uncached and is
// freed with its sequence.
#include "serve/prefix_cache.h"

#include <gtest/gtest.h>

#include <vector>

namespace plm::serve {
namespace {

constexpr int64_t kBlock = 4;

BlockHash hash(uint8_t id) {
  BlockHash h;
  h.digest[0] = id;
  return h;
}

class PrefixCacheTest : public ::testing::Test {
 protected:
  PrefixCacheTest()
      : cache_(model::KvLayout{.num_layers = 1, .num_kv_heads = 1, .head_dim = 1},
               {.block_size = kBlock, .num_blocks = 8, .max_sequence_len = 32}, DType::kF32, Device::cpu()),
        prefix_(cache_) {}

  // A sequence of `blocks` full blocks (after `shared`, blocks it starts with); returns its table.
  std::vector<int32_t> fill(model::SequenceId id, int64_t blocks, std::vector<int32_t> shared = {}) {
    EXPECT_TRUE(cache_.add_sequence(id, shared).ok());
    prefix_.acquire(shared);
    const int64_t start = static_cast<int64_t>(shared.size()) * kBlock;
    if (blocks > 0) cache_.append({{{.sequence = id, .start = start, .length = blocks * kBlock}}});
    const std::span<const int32_t> table = cache_.block_table(id);
    return {table.begin(), table.end()};
  }
  // Frees the sequence as the paged space does.
  void free(model::SequenceId id) {
    const std::vector<int32_t> table(cache_.block_table(id).begin(), cache_.block_table(id).end());
    cache_.free_sequence(id);
    prefix_.release(table);
  }

  model::PagedKvCache cache_;
  PrefixCache prefix_;
};

TEST_F(PrefixCacheTest, BlocksOnlyTheCacheHoldsAreEvictableAndFoundAgain) {
  const std::vector<int32_t> a = fill(1, 3);
  for (int b = 0; b < 3; ++b) prefix_.insert(hash(10 + b), a[b]);
  EXPECT_EQ(prefix_.match(std::vector<BlockHash>{hash(10), hash(11), hash(99), hash(12)}),
            (std::vector<int32_t>{a[0], a[1]}));
  EXPECT_EQ(prefix_.num_evictable(), 0);

  // A second sequence shares the first two blocks; the first one ends: only its last block is the cache's alone.
  const std::vector<int32_t> b = fill(2, 1, {a[0], a[1]});
  free(1);
  EXPECT_EQ(prefix_.num_evictable(), 1);
  EXPECT_EQ(cache_.ref_count(a[2]), 1);
  EXPECT_EQ(cache_.num_used_blocks(), 4);
  free(2);
  EXPECT_EQ(prefix_.num_evictable(), 3);
  EXPECT_EQ(cache_.num_free_blocks(), 5) << "b's own block, never inserted, is free";

  // Taking blocks back makes them unevictable again.
  const std::vector<int32_t> c = fill(3, 0, prefix_.match(std::vector<BlockHash>{hash(10)}));
  EXPECT_EQ(c, (std::vector<int32_t>{a[0]}));
  EXPECT_EQ(prefix_.num_evictable(), 2);
  const PrefixCacheCounters counters = prefix_.counters();
  EXPECT_EQ(counters.cached_blocks, 3);
  EXPECT_EQ(counters.evictable_blocks, 2);
}

TEST_F(PrefixCacheTest, EvictsLeastRecentlyReleasedAndASequencesTailFirst) {
  const std::vector<int32_t> a = fill(1, 2), b = fill(2, 2);
  prefix_.insert(hash(1), a[0]);
  prefix_.insert(hash(2), a[1]);
  prefix_.insert(hash(3), b[0]);
  prefix_.insert(hash(4), b[1]);
  free(1);  // evictable: a[1], a[0]
  free(2);  // then b[1], b[0]
  EXPECT_EQ(cache_.num_free_blocks(), 4);
  EXPECT_FALSE(prefix_.make_free(9));
  EXPECT_EQ(prefix_.num_evictable(), 4) << "a request that cannot be met evicts nothing";
  EXPECT_TRUE(prefix_.make_free(5));
  EXPECT_EQ(prefix_.match(std::vector<BlockHash>{hash(1), hash(2)}), (std::vector<int32_t>{a[0]}));
  EXPECT_TRUE(prefix_.make_free(7));
  EXPECT_TRUE(prefix_.match(std::vector<BlockHash>{hash(1)}).empty());
  EXPECT_EQ(prefix_.match(std::vector<BlockHash>{hash(3), hash(4)}), (std::vector<int32_t>{b[0]}));
  EXPECT_EQ(prefix_.counters().evictions, 3);
  EXPECT_EQ(cache_.num_free_blocks(), 7);
}

TEST_F(PrefixCacheTest, ASecondBlockWithAKnownHashStaysWithItsSequence) {
  const std::vector<int32_t> a = fill(1, 1), b = fill(2, 1);
  prefix_.insert(hash(1), a[0]);
  prefix_.insert(hash(1), b[0]);
  EXPECT_EQ(cache_.ref_count(b[0]), 1);
  free(2);
  EXPECT_EQ(cache_.ref_count(b[0]), 0);
  EXPECT_EQ(prefix_.match(std::vector<BlockHash>{hash(1)}), (std::vector<int32_t>{a[0]}));
}

}  // namespace
}  // namespace plm::serve
