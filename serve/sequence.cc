#include "serve/sequence.h"

#include <algorithm>

namespace plm::serve {

std::pair<int64_t, int64_t> SequenceMedia::placeholders_in(int64_t begin, int64_t end) const {
  const auto first = std::lower_bound(positions.begin(), positions.end(), begin);
  const auto last = std::lower_bound(first, positions.end(), end);
  return {first - positions.begin(), last - positions.begin()};
}

std::pair<int64_t, int64_t> SequenceMedia::items_in(int64_t begin, int64_t end) const {
  const auto [first, last] = placeholders_in(begin, end);
  if (first == last) return {0, 0};
  return {first / tokens_per_item, (last - 1) / tokens_per_item + 1};
}

void Sequence::hash_full_blocks(int64_t block_tokens) {
  std::vector<PlaceholderRow> rows;
  for (int64_t b = static_cast<int64_t>(block_hashes.size()); b < num_tokens() / block_tokens; ++b) {
    const int64_t begin = b * block_tokens, end = begin + block_tokens;
    rows.clear();
    for (MediaKind kind : kMediaKinds) {
      const SequenceMedia& m = media_of(kind);
      const auto [first, last] = m.placeholders_in(begin, end);
      for (int64_t p = first; p < last; ++p) {
        rows.push_back({.key = m.items.keys[p / m.tokens_per_item], .row = p % m.tokens_per_item});
      }
    }
    const std::span<const int32_t> block(tokens.data() + begin, static_cast<size_t>(block_tokens));
    block_hashes.push_back(hash_block(b == 0 ? BlockHash{} : block_hashes[b - 1], block, rows));
  }
}

void index_media_positions(Sequence& seq, int32_t image_token, int32_t video_token) {
  for (MediaKind kind : kMediaKinds) {
    const int32_t token = kind == MediaKind::kImage ? image_token : video_token;
    std::vector<int64_t>& positions = seq.media_of(kind).positions;
    positions.clear();
    for (int64_t p = 0; p < seq.num_prompt_tokens; ++p) {
      if (seq.tokens[p] == token) positions.push_back(p);
    }
  }
}

}  // namespace plm::serve
