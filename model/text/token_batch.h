// TokenBatch: which tokens one decoder forward runs. Tokens of several sequences are packed along one
// axis (T rows); each chunk is a run of consecutive tokens of one sequence, starting after the tokens already
// cached for it. Prefill: start 0 (or after a shared prefix), length = prompt or a piece of it; decode:
// length 1. A sequence is a slot of the DenseKvCache or a sequence id of the PagedKvCache (kv_cache.h).
#pragma once

#include <cstdint>
#include <vector>

namespace plm::model {

using SequenceId = int64_t;

struct SequenceChunk {
  SequenceId sequence = 0;  // the dense cache's slot, or the paged cache's sequence id
  int64_t start = 0;        // tokens of this sequence already in the cache (= position of the first token)
  int64_t length = 0;       // tokens in this chunk
};

struct TokenBatch {
  std::vector<SequenceChunk> chunks;  // in packing order

  int64_t num_tokens() const {
    int64_t n = 0;
    for (const SequenceChunk& c : chunks) n += c.length;
    return n;
  }
};

}  // namespace plm::model
