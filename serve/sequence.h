// Sequence: the engine's state of one request as the scheduler and the model runner see it: its tokens (prompt,
// then generated), how many of them are in the KV cache, its cache slot, for each media kind the prompt
// positions of the placeholders with the tiles / frames they stand for, and the content hashes of its full token
// blocks (prefix caching). A sequence whose cache was taken away (preemption) recomputes from num_computed = 0
// over prompt and generated tokens alike (from its cached prefix, if the prefix cache still has it).
// Engine thread only.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "serve/block_hash.h"
#include "serve/encoder_cache.h"
#include "serve/pooled_embedding.h"
#include "serve/request.h"

namespace plm::serve {

enum class MediaKind { kImage = 0, kVideo = 1 };
inline constexpr std::array<MediaKind, 2> kMediaKinds = {MediaKind::kImage, MediaKind::kVideo};

// One media kind of a prompt: item i (a tile or a frame) fills placeholders [i * tokens_per_item, (i + 1) *
// tokens_per_item) of this kind, which sit at `positions` in the prompt.
struct SequenceMedia {
  MediaTiles items;
  std::vector<int64_t> positions;  // ascending prompt positions of this kind's placeholders
  int64_t tokens_per_item = 1;
  // The item whose rows the last chunk ended inside: the next chunk takes the rest of it from here.
  int64_t pinned_item = -1;
  EncoderCache::Entry pinned;
  int64_t num_counted = 0;  // items [0, num_counted) already counted in the request's usage

  // Placeholder indices [first, last) whose positions lie in [begin, end).
  std::pair<int64_t, int64_t> placeholders_in(int64_t begin, int64_t end) const;
  // Items [first, last) those placeholders belong to (empty when none).
  std::pair<int64_t, int64_t> items_in(int64_t begin, int64_t end) const;
  int64_t first_position(int64_t item) const { return positions[item * tokens_per_item]; }
};

struct Sequence {
  std::string id;
  uint64_t arrival_order = 0;         // FCFS order
  std::vector<int32_t> tokens;        // prompt, then generated tokens
  int64_t num_prompt_tokens = 0;
  int64_t max_total_tokens = 0;       // prompt + max new tokens: the most cache it can need
  int64_t num_computed = 0;           // tokens whose keys and values are in the cache
  int slot = -1;                      // KV-cache slot while running; -1 while waiting
  int num_bypassed = 0;               // times a later request was admitted before it (aging)
  std::array<SequenceMedia, 2> media;  // indexed by MediaKind
  int64_t num_media_cached = 0;       // items whose embeddings came from the encoder cache (or the same step)
  int64_t num_media_encoded = 0;      // items the vision tower encoded for it
  int64_t num_cached_prompt_tokens = 0;  // prompt tokens the prefix cache held when the prompt was (last) admitted
  std::vector<BlockHash> block_hashes;  // of its blocks [0, n) of the KV space's block size (hash_full_blocks)
  std::optional<PooledEmbedding> pooled_media;  // when the request asked: each item's rows, added once

  SequenceMedia& media_of(MediaKind kind) { return media[static_cast<int>(kind)]; }
  const SequenceMedia& media_of(MediaKind kind) const { return media[static_cast<int>(kind)]; }
  int64_t num_tokens() const { return static_cast<int64_t>(tokens.size()); }
  // Decoding: only the newest token still has to go through the model.
  bool is_decoding() const { return num_tokens() - num_computed == 1; }
  int64_t num_generated() const { return num_tokens() - num_prompt_tokens; }
  // Extends block_hashes over every full block of block_tokens of its tokens (one block size per sequence).
  void hash_full_blocks(int64_t block_tokens);
};

// Fills media[kind].positions from the prompt's placeholder ids (items and tokens_per_item must be set).
void index_media_positions(Sequence& seq, int32_t image_token, int32_t video_token);

}  // namespace plm::serve
