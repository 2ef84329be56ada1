// Block hashes of sequences (Sequence::hash_full_blocks over hash_block): only full blocks are hashed and later
// extensions keep the earlier hashes; a block's hash depends on every token before and in it and on the
// MediaKey behind each placeholder in or before it, so two different images behind identical placeholder ids
// never share a block.
#include "serve/block_hash.h"

#include <gtest/gtest.h>

#include "serve/sequence.h"

namespace plm::serve {
namespace {

constexpr int32_t kImage = 7;
constexpr int64_t kBlock = 4;

MediaKey key(uint8_t id) {
  MediaKey k;
  k.digest[0] = id;
  return k;
}

// 14 tokens: 3 text, 2 image items of 3 placeholders (positions 3..8), 5 text. Items keyed `first`, `second`.
Sequence image_sequence(uint8_t first, uint8_t second) {
  Sequence seq;
  seq.tokens = {1, 2, 3, kImage, kImage, kImage, kImage, kImage, kImage, 4, 5, 6, 8, 9};
  seq.num_prompt_tokens = seq.num_tokens();
  SequenceMedia& m = seq.media_of(MediaKind::kImage);
  m.tokens_per_item = 3;
  m.items.keys = {key(first), key(second)};
  index_media_positions(seq, kImage, /*video_token=*/99);
  return seq;
}

TEST(BlockHash, OnlyFullBlocksAndExtensionsKeepTheEarlierHashes) {
  Sequence seq = image_sequence(1, 2);
  seq.hash_full_blocks(kBlock);
  ASSERT_EQ(seq.block_hashes.size(), 3u);  // 14 tokens: 3 full blocks
  const std::vector<BlockHash> before = seq.block_hashes;
  seq.tokens.push_back(10);
  seq.tokens.push_back(11);
  seq.hash_full_blocks(kBlock);
  ASSERT_EQ(seq.block_hashes.size(), 4u);
  EXPECT_EQ(std::vector<BlockHash>(seq.block_hashes.begin(), seq.block_hashes.begin() + 3), before);
  EXPECT_NE(seq.block_hashes[3], seq.block_hashes[2]);
}

TEST(BlockHash, MediaKeysAndTokensChainThroughLaterBlocks) {
  Sequence a = image_sequence(1, 2), same = image_sequence(1, 2), second_differs = image_sequence(1, 3);
  for (Sequence* s : {&a, &same, &second_differs}) s->hash_full_blocks(kBlock);
  EXPECT_EQ(a.block_hashes, same.block_hashes);
  // Item 1 takes positions 6..8: block 0 (0..3) is unchanged; block 1 (4..7) and everything after differ.
  EXPECT_EQ(a.block_hashes[0], second_differs.block_hashes[0]);
  EXPECT_NE(a.block_hashes[1], second_differs.block_hashes[1]);
  EXPECT_NE(a.block_hashes[2], second_differs.block_hashes[2]);

  // A different first token changes every block.
  Sequence first_token = image_sequence(1, 2);
  first_token.tokens[0] = 42;
  first_token.hash_full_blocks(kBlock);
  for (size_t b = 0; b < a.block_hashes.size(); ++b) EXPECT_NE(a.block_hashes[b], first_token.block_hashes[b]) << b;

  // The same items in the other order: the placeholders' rows come from other tiles.
  Sequence swapped = image_sequence(2, 1);
  swapped.hash_full_blocks(kBlock);
  EXPECT_NE(a.block_hashes[0], swapped.block_hashes[0]);
}

TEST(BlockHash, TheRowOfEachPlaceholderCounts) {
  const std::vector<int32_t> tokens = {kImage, kImage};
  const std::vector<PlaceholderRow> rows = {{.key = key(1), .row = 0}, {.key = key(1), .row = 1}};
  const std::vector<PlaceholderRow> shifted = {{.key = key(1), .row = 1}, {.key = key(1), .row = 2}};
  EXPECT_NE(hash_block({}, tokens, rows), hash_block({}, tokens, shifted));
  EXPECT_EQ(hash_block({}, tokens, rows), hash_block({}, tokens, rows));
}

}  // namespace
}  // namespace plm::serve
