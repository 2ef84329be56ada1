// HostBlockCache: large blocks come back for requests of up to their size (best fit, at most twice the request),
// small ones and ones past the bound go straight back to the system, and the oldest cached blocks leave first.
#include "core/host_block_cache.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>

namespace plm {
namespace {

constexpr size_t kMiB = size_t{1} << 20;

TEST(HostBlockCache, ReusesAFreedBlockForARequestItFits) {
  HostBlockCache cache(64 * kMiB);
  size_t capacity = 0;
  void* block = cache.allocate(8 * kMiB, &capacity);
  ASSERT_NE(block, nullptr);
  EXPECT_EQ(capacity, 8 * kMiB);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(block) % HostBlockCache::kAlignment, 0u);
  std::memset(block, 1, capacity);
  cache.free(block, capacity);
  EXPECT_EQ(cache.stats().bytes_cached, 8 * kMiB);

  size_t reused_capacity = 0;
  void* reused = cache.allocate(5 * kMiB, &reused_capacity);  // within twice the request
  EXPECT_EQ(reused, block);
  EXPECT_EQ(reused_capacity, 8 * kMiB);
  EXPECT_EQ(cache.stats().bytes_cached, 0u);
  EXPECT_EQ(cache.stats().hits, 1u);
  cache.free(reused, reused_capacity);

  size_t small_capacity = 0;
  void* small = cache.allocate(3 * kMiB, &small_capacity);  // 8 MiB is more than twice 3: a fresh block
  EXPECT_NE(small, block);
  EXPECT_EQ(small_capacity, 3 * kMiB);
  EXPECT_EQ(cache.stats().misses, 2u);
  cache.free(small, small_capacity);
  EXPECT_EQ(cache.stats().bytes_cached, 11 * kMiB);
}

TEST(HostBlockCache, PicksTheSmallestBlockThatFits) {
  HostBlockCache cache(64 * kMiB);
  size_t big_capacity = 0, fit_capacity = 0;
  void* big = cache.allocate(12 * kMiB, &big_capacity);
  void* fit = cache.allocate(7 * kMiB, &fit_capacity);
  cache.free(big, big_capacity);
  cache.free(fit, fit_capacity);
  size_t capacity = 0;
  EXPECT_EQ(cache.allocate(6 * kMiB, &capacity), fit);
  EXPECT_EQ(capacity, 7 * kMiB);
  cache.free(fit, capacity);
}

TEST(HostBlockCache, KeepsSmallAndOversizedBlocksOut) {
  HostBlockCache cache(16 * kMiB);
  size_t capacity = 0;
  void* small = cache.allocate(kMiB / 2, &capacity);
  cache.free(small, capacity);
  void* huge = cache.allocate(32 * kMiB, &capacity);
  cache.free(huge, capacity);
  EXPECT_EQ(cache.stats().bytes_cached, 0u);
  EXPECT_EQ(cache.stats().misses, 1u) << "only the huge block was a cacheable request";
}

TEST(HostBlockCache, DropsTheOldestBlocksPastTheBound) {
  HostBlockCache cache(20 * kMiB);
  size_t first_capacity = 0, second_capacity = 0, third_capacity = 0;
  void* first = cache.allocate(8 * kMiB, &first_capacity);
  void* second = cache.allocate(8 * kMiB, &second_capacity);
  void* third = cache.allocate(8 * kMiB, &third_capacity);
  cache.free(first, first_capacity);
  cache.free(second, second_capacity);
  cache.free(third, third_capacity);  // 24 MiB > 20: the first block goes back to the system
  EXPECT_EQ(cache.stats().bytes_cached, 16 * kMiB);
  size_t capacity = 0;
  void* again = cache.allocate(8 * kMiB, &capacity);
  EXPECT_TRUE(again == second || again == third);
  cache.free(again, capacity);
  cache.empty();
  EXPECT_EQ(cache.stats().bytes_cached, 0u);
}

TEST(HostBlockCache, ABoundOfZeroCachesNothing) {
  HostBlockCache cache(0);
  size_t capacity = 0;
  void* block = cache.allocate(4 * kMiB, &capacity);
  ASSERT_NE(block, nullptr);
  cache.free(block, capacity);
  EXPECT_EQ(cache.stats().bytes_cached, 0u);
}

}  // namespace
}  // namespace plm
