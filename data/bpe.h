// Rank-based byte-pair encoding of one pre-tokenized piece, as tiktoken does it (spec/tokenizer.md §3.5):
// a piece that is itself a token is emitted whole; otherwise, starting from single bytes, the adjacent pair
// whose concatenation has the lowest rank (leftmost on ties) is merged until no pair is a token.
// Not thread-safe per BpeScratch; use one scratch per thread.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "data/vocab.h"

namespace plm::data {

// Buffers reused from piece to piece so that encoding allocates nothing per piece.
struct BpeScratch {
  std::vector<uint32_t> starts;     // part boundaries (byte offsets into the piece)
  std::vector<int32_t> pair_ranks;  // rank of part i merged with part i+1
  std::vector<uint32_t> next, prev; // linked list of parts (long pieces)
  std::vector<uint64_t> heap;       // (rank << 32 | start) entries (long pieces)
};

// Appends the ids of `piece` to *out.
void bpe_encode(const Vocab& vocab, std::string_view piece, BpeScratch& scratch, std::vector<int32_t>* out);

// The two merge loops bpe_encode chooses between; they give identical results. The scan is O(n^2) and fastest
// for the short pieces of ordinary text; the heap is O(n log n), for long runs of spaces or punctuation.
void bpe_merge_scan(const Vocab& vocab, std::string_view piece, BpeScratch& scratch, std::vector<int32_t>* out);
void bpe_merge_heap(const Vocab& vocab, std::string_view piece, BpeScratch& scratch, std::vector<int32_t>* out);

}  // namespace plm::data
