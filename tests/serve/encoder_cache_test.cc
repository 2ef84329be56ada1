// EncoderCache: LRU by bytes, hit/miss counters, entries kept alive by holders after eviction; MediaKey: SHA-256
// per row, equal pixels give equal keys and the shape is part of the key.
#include "serve/encoder_cache.h"

#include <gtest/gtest.h>

#include "serve/media_key.h"

namespace plm::serve {
namespace {

MediaKey key(int i) {
  MediaKey k;
  k.digest[0] = static_cast<uint8_t>(i);
  return k;
}

EncoderCache::Entry rows(int64_t n, float value) {
  auto t = std::make_shared<OwnedTensor>(Shape{n, 4}, DType::kF32);
  for (int64_t i = 0; i < n * 4; ++i) t->data_as<float>()[i] = value;
  return t;
}

TEST(EncoderCache, EvictsLeastRecentlyUsedToStayWithinItsBytes) {
  EncoderCache cache(3 * 64);  // three entries of (4, 4) f32
  cache.insert(key(1), rows(4, 1));
  cache.insert(key(2), rows(4, 2));
  cache.insert(key(3), rows(4, 3));
  ASSERT_NE(cache.find(key(1)), nullptr);  // 1 is now the most recent: 2 goes first
  cache.insert(key(4), rows(4, 4));
  EXPECT_FALSE(cache.contains(key(2)));
  EXPECT_TRUE(cache.contains(key(1)) && cache.contains(key(3)) && cache.contains(key(4)));
  EXPECT_EQ(cache.find(key(2)), nullptr);
  const EncoderCacheCounters c = cache.counters();
  EXPECT_EQ(c.hits, 1);
  EXPECT_EQ(c.misses, 1);
  EXPECT_EQ(c.evictions, 1);
  EXPECT_EQ(c.entries, 3);
  EXPECT_EQ(c.bytes, 3 * 64);
}

TEST(EncoderCache, HoldersKeepEvictedEntriesAndOversizedValuesAreNotStored) {
  EncoderCache cache(64);
  cache.insert(key(1), rows(4, 1));
  const EncoderCache::Entry held = cache.find(key(1));
  cache.insert(key(2), rows(4, 2));
  EXPECT_FALSE(cache.contains(key(1)));
  EXPECT_EQ(held->data_as<float>()[0], 1.0f);
  cache.insert(key(3), rows(8, 3));  // 128 bytes > 64
  EXPECT_FALSE(cache.contains(key(3)));
  EXPECT_TRUE(cache.contains(key(2)));
  EncoderCache disabled(0);
  disabled.insert(key(1), rows(1, 1));
  EXPECT_EQ(disabled.counters().entries, 0);
}

TEST(MediaKey, EqualRowsShareAKeyAndTheShapeCounts) {
  OwnedTensor pixels({3, 3, 2, 2}, DType::kF32);
  for (int64_t i = 0; i < pixels.numel(); ++i) pixels.data_as<float>()[i] = static_cast<float>(i % 12);
  pixels.data_as<float>()[2 * 12] = 99.0f;  // row 2 differs
  const std::vector<MediaKey> keys = media_keys(pixels);
  ASSERT_EQ(keys.size(), 3u);
  EXPECT_EQ(keys[0], keys[1]);
  EXPECT_NE(keys[0], keys[2]);
  EXPECT_EQ(keys[0].hex().size(), 64u);
  OwnedTensor same_bytes({1, 3, 4, 1}, DType::kF32);
  for (int64_t i = 0; i < 12; ++i) same_bytes.data_as<float>()[i] = static_cast<float>(i);
  EXPECT_NE(media_keys(same_bytes)[0], keys[0]);
}

}  // namespace
}  // namespace plm::serve
