// BlockHash: the content address of one full block of a sequence's keys and values, for prefix caching. Block b's
// hash is SHA-256 over block b - 1's hash (zeros for the first), the block's token ids, and, for every media
// placeholder in it (images, then videos, in prompt order), the MediaKey of the tile / frame whose row it takes and
// the row's index. Equal hashes mean equal tokens at equal positions after an equal prefix with equal media, so
// equal keys and values: two different images behind identical placeholder ids never share a block. SHA-256 (as
// for MediaKey) so a client cannot craft a prompt whose blocks collide with another client's cached ones.
// Thread-safe (pure functions).
#pragma once

#include <array>
#include <cstdint>
#include <span>

#include "serve/media_key.h"

namespace plm::serve {

struct BlockHash {
  std::array<uint8_t, 32> digest{};

  bool operator==(const BlockHash&) const = default;

  template <typename H>
  friend H AbslHashValue(H h, const BlockHash& hash) {
    return H::combine_contiguous(std::move(h), hash.digest.data(), hash.digest.size());
  }
};

// The media row a placeholder of the block takes.
struct PlaceholderRow {
  MediaKey key;     // its tile / frame
  int64_t row = 0;  // in [0, tokens per tile)
};

// The hash of a block holding `tokens` whose placeholders take `rows`, after the block hashed as `previous`.
BlockHash hash_block(const BlockHash& previous, std::span<const int32_t> tokens, std::span<const PlaceholderRow> rows);

}  // namespace plm::serve
