// PagedKvCache: a KvCache (kv_cache.h) whose storage is a fixed pool of blocks of block_size tokens, handed
// to sequences as they grow. A sequence is named by a SequenceId the caller picks; its block table lists the
// blocks of its tokens in order, token p in row p % block_size of block table[p / block_size].
//
// Sharing (prefix caching): blocks are reference-counted. A new sequence may start with full blocks that
// other sequences filled (add_sequence's prefix_blocks), and the caller may hold its own references
// (retain_block / release_block, e.g. a prefix cache keyed by token-block hashes keeping blocks alive after
// their sequence ends). Only full blocks are ever shared, and a sequence only appends past its last full
// block, so shared blocks are never written: no copy-on-write. fork() copies just the partial last block.
// A block returns to the free pool when its last reference goes.
//
// How an engine drives it, between forwards:
//   add_sequence(id, cached_prefix)           admit (prefix: full blocks, at most (prompt - 1) / block_size of
//                                             them so the last prompt token still runs for its logits)
//   blocks_needed(id, n) <= num_free_blocks() before scheduling n more tokens of id (or for a whole batch)
//   PlmModel::step(...) with chunks {id, length(id), n}: check() + append() inside
//   block_table(id)                           its first length(id) / block_size blocks are full: hash them
//   fork(id, child)                           parallel sampling / beam: shares the full blocks
//   free_sequence(id)                         finished, cancelled, or preempted (recompute later)
// Not thread-safe.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "model/text/kv_cache.h"

namespace plm::model {

struct PagedKvCacheConfig {
  // Tokens per block: the unit of prefix sharing. On the CPU, small blocks scattered over the pool slow decode
  // attention (8 sequences x 4096 keys, one thread: ~1.2x the dense cache's time at 16, ~1.05x at 64).
  int64_t block_size = 16;
  int64_t num_blocks = 0;         // the pool (blocks_for_bytes turns a byte budget into a count)
  int64_t max_sequence_len = 0;   // the longest sequence, e.g. the model's context length
};

class PagedKvCache final : public KvCache {
 public:
  // Bytes of one block over all layers, keys and values.
  static size_t block_bytes(const KvLayout& layout, int64_t block_size, DType dtype);
  // The most blocks `bytes` hold. Under pipeline parallelism every stage must use one count (the smallest).
  static int64_t blocks_for_bytes(const KvLayout& layout, int64_t block_size, DType dtype, size_t bytes);

  PagedKvCache(const KvLayout& layout, const PagedKvCacheConfig& config, DType dtype, Device device);

  int64_t max_len() const override { return max_sequence_len_; }
  // Per chunk: its sequence exists, appears once in the batch, and start == length(sequence); the sequence
  // stays within max_len (ResourceExhausted); the batch's new blocks fit the free pool (ResourceExhausted).
  absl::Status check(const TokenBatch& batch) const override;
  // New blocks come from the top of the free stack, as append() takes them.
  std::vector<std::vector<int32_t>> tables_for(const TokenBatch& batch) const override;

  // ---- The pool ----
  int64_t num_free_blocks() const { return static_cast<int64_t>(free_blocks_.size()); }
  int64_t num_used_blocks() const { return num_blocks() - num_free_blocks(); }
  // References to `block`: sequences whose table holds it plus retain_block calls; 0 when free.
  int ref_count(int32_t block) const;
  // Whether every row of `block` has been written (only such blocks can be shared).
  bool is_full(int32_t block) const;
  // One more (less) reference held by the caller to a block in use; the last release frees it.
  void retain_block(int32_t block);
  void release_block(int32_t block);

  // ---- Sequences ----
  // A new sequence holding prefix_blocks (in use and full, e.g. the start of another sequence's table), so
  // its length is prefix_blocks.size() * block_size. AlreadyExists for a used id; InvalidArgument for a
  // block that is free or partly written; ResourceExhausted past max_len.
  absl::Status add_sequence(SequenceId id, std::span<const int32_t> prefix_blocks = {});
  bool contains(SequenceId id) const { return sequences_.contains(id); }
  int64_t num_sequences() const { return static_cast<int64_t>(sequences_.size()); }
  // Tokens of the sequence in the cache.
  int64_t length(SequenceId id) const;
  // Its blocks, in token order (the last one may be partly written).
  std::span<const int32_t> block_table(SequenceId id) const;
  // New blocks that appending new_tokens to the sequence takes.
  int64_t blocks_needed(SequenceId id, int64_t new_tokens) const;
  // New blocks the whole batch takes (its chunks' sequences must exist).
  int64_t blocks_needed(const TokenBatch& batch) const;
  // child = a copy of parent's tokens: shares its full blocks and copies its partial last block (one new
  // block, copied on `s`). AlreadyExists / NotFound for the ids; ResourceExhausted without a free block.
  absl::Status fork(SequenceId parent, SequenceId child, Stream s = {});
  // Drops the sequence and its references (finished, cancelled or preempted). PLM_CHECKs that it exists.
  void free_sequence(SequenceId id);

 private:
  struct Sequence {
    std::vector<int32_t> blocks;
    int64_t length = 0;
  };

  std::span<const int32_t> reserve(const SequenceChunk& chunk) override;
  const Sequence& sequence(SequenceId id) const;
  int32_t allocate_block();
  void check_block(int32_t block) const;

  int64_t max_sequence_len_;
  std::vector<int> ref_counts_;       // (num_blocks)
  std::vector<int64_t> filled_;       // (num_blocks) rows written, block_size when full
  std::vector<int32_t> free_blocks_;  // a stack: the most recently freed block is reused first
  absl::flat_hash_map<SequenceId, Sequence> sequences_;
};

}  // namespace plm::model
