// The BPE merge loops. Both merge the lowest-rank adjacent pair first, leftmost on ties, and produce the same
// ids; bpe_encode picks the scan for short pieces and the heap for long ones.
#include "data/bpe.h"

#include <algorithm>
#include <functional>
#include <limits>

namespace plm::data {
namespace {

// Above this many bytes the scan's O(n^2) outweighs the heap's bookkeeping (e.g. 10k spaces or "=====...").
constexpr size_t kHeapMinBytes = 128;
constexpr int32_t kNoPair = std::numeric_limits<int32_t>::max();  // sorts after every real rank
constexpr int32_t kDeadPart = -2;                                  // a part merged into its left neighbour
constexpr uint32_t kNone = std::numeric_limits<uint32_t>::max();

int32_t rank_of(const Vocab& vocab, std::string_view piece, size_t begin, size_t end) {
  const int32_t rank = vocab.rank(piece.substr(begin, end - begin));
  return rank == Vocab::kNoToken ? kNoPair : rank;
}

}  // namespace

void bpe_encode(const Vocab& vocab, std::string_view piece, BpeScratch& scratch, std::vector<int32_t>* out) {
  // spec/tokenizer.md §3.5: whole-piece lookup first; 588 Llama 3 tokens cannot be reached by merging.
  const int32_t whole = vocab.rank(piece);
  if (whole != Vocab::kNoToken) {
    out->push_back(whole);
  } else if (piece.size() < kHeapMinBytes) {
    bpe_merge_scan(vocab, piece, scratch, out);
  } else {
    bpe_merge_heap(vocab, piece, scratch, out);
  }
}

// tiktoken's _byte_pair_merge: parts are kept in an array; each step scans for the lowest pair rank.
void bpe_merge_scan(const Vocab& vocab, std::string_view piece, BpeScratch& scratch, std::vector<int32_t>* out) {
  const size_t n = piece.size();
  std::vector<uint32_t>& starts = scratch.starts;      // (num_parts + 1): the last entry is n
  std::vector<int32_t>& pair_ranks = scratch.pair_ranks;  // (num_parts + 1): pair_ranks[i] merges parts i, i+1
  starts.resize(n + 1);
  pair_ranks.resize(n + 1);
  for (size_t i = 0; i <= n; ++i) {
    starts[i] = static_cast<uint32_t>(i);
    pair_ranks[i] = i + 2 <= n ? rank_of(vocab, piece, i, i + 2) : kNoPair;
  }
  // The rank of parts i and i+1 merged, given the boundaries as they will be once part i+1 is gone.
  const auto merged_rank = [&](size_t i) {
    return i + 3 < starts.size() ? rank_of(vocab, piece, starts[i], starts[i + 3]) : kNoPair;
  };
  while (true) {
    const auto best = std::min_element(pair_ranks.begin(), pair_ranks.end() - 1);
    if (*best == kNoPair) break;
    const size_t i = static_cast<size_t>(best - pair_ranks.begin());
    if (i > 0) pair_ranks[i - 1] = merged_rank(i - 1);
    pair_ranks[i] = merged_rank(i);
    starts.erase(starts.begin() + static_cast<ptrdiff_t>(i) + 1);
    pair_ranks.erase(pair_ranks.begin() + static_cast<ptrdiff_t>(i) + 1);
  }
  for (size_t i = 0; i + 1 < starts.size(); ++i) out->push_back(vocab.rank(piece.substr(starts[i], starts[i + 1] - starts[i])));
}

// A doubly linked list of parts (indexed by start byte) and a min-heap of (rank, start) pair entries; an
// entry is stale once pair_ranks[start] no longer equals its rank (a pair's span only grows, so its rank
// never returns to an old value).
void bpe_merge_heap(const Vocab& vocab, std::string_view piece, BpeScratch& scratch, std::vector<int32_t>* out) {
  const uint32_t n = static_cast<uint32_t>(piece.size());
  std::vector<uint32_t>& next = scratch.next;           // (n): start of the following part, n at the end
  std::vector<uint32_t>& prev = scratch.prev;           // (n): start of the preceding part, kNone at 0
  std::vector<int32_t>& pair_ranks = scratch.pair_ranks;  // (n): rank of the part at i merged with the next
  std::vector<uint64_t>& heap = scratch.heap;
  next.resize(n);
  prev.resize(n);
  pair_ranks.resize(n);
  heap.clear();
  const auto end_of = [&](uint32_t part) { return part == n ? n : next[part]; };
  const auto push_pair = [&](uint32_t part) {
    pair_ranks[part] = next[part] < n ? rank_of(vocab, piece, part, end_of(next[part])) : kNoPair;
    if (pair_ranks[part] != kNoPair) {
      heap.push_back(static_cast<uint64_t>(pair_ranks[part]) << 32 | part);
      std::push_heap(heap.begin(), heap.end(), std::greater<>());
    }
  };
  for (uint32_t i = 0; i < n; ++i) {
    next[i] = i + 1;
    prev[i] = i == 0 ? kNone : i - 1;
  }
  for (uint32_t i = 0; i < n; ++i) push_pair(i);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), std::greater<>());
    const uint64_t entry = heap.back();
    heap.pop_back();
    const uint32_t part = static_cast<uint32_t>(entry);
    if (pair_ranks[part] != static_cast<int32_t>(entry >> 32)) continue;  // stale
    const uint32_t absorbed = next[part];
    next[part] = next[absorbed];
    if (next[part] < n) prev[next[part]] = part;
    pair_ranks[absorbed] = kDeadPart;
    push_pair(part);
    if (prev[part] != kNone) push_pair(prev[part]);
  }
  for (uint32_t part = 0; part < n; part = next[part]) out->push_back(vocab.rank(piece.substr(part, next[part] - part)));
}

}  // namespace plm::data
