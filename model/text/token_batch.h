// TokenBatch: which tokens one decoder forward runs. Tokens of several sequences are packed along one
// axis (T rows); each chunk is a run of consecutive tokens of the sequence in one KV-cache slot, starting
// after the tokens already cached there. Prefill: start 0, length = prompt; decode: length 1.
#pragma once

#include <cstdint>
#include <vector>

namespace plm::model {

struct SequenceChunk {
  int slot = 0;        // KV-cache slot of the sequence
  int64_t start = 0;   // tokens of this sequence already in the cache (= position of the first token)
  int64_t length = 0;  // tokens in this chunk
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
