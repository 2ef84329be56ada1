// KV caches for inference. Every kind stores, per decoder layer of this rank, keys (after RoPE, spec §2.7
// step 4) and values in blocks of tokens, (num_blocks, block_size, kv_heads, head_dim), and a sequence's tokens
// in the blocks of its block table. A forward over a TokenBatch runs in two steps: check() says whether the
// batch fits (changing nothing), then append() books its tokens and returns the KvStep every layer uses to write
// its k, v and attend (KvCacheAttention, attention_core.h: paged_kv_write + paged_attention_forward).
//  - DenseKvCache (here): num_slots slots of max_len tokens, one block each; the caller tracks lengths and
//    names the slot and start of each chunk (a chunk may rewrite positions already written).
//  - PagedKvCache (paged_kv_cache.h): a pool of small blocks shared by sequences, with prefix sharing.
// Not thread-safe: one forward at a time, and bookkeeping calls between forwards.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "core/kernels/kernel_types.h"
#include "core/tensor.h"
#include "model/text/token_batch.h"

namespace plm::model {

// What a cache holds per token on this rank: its layers, and its KV heads (its TP share).
struct KvLayout {
  int num_layers = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
};

// One forward's view of the cache, the same for every layer: device i32 tensors built by KvCache::append().
struct KvStep {
  OwnedTensor slots;         // (T) cache row of each new token: block * block_size + offset
  OwnedTensor block_tables;  // (chunks, max_blocks) each chunk's sequence's blocks, -1 past its last
  OwnedTensor query_starts;  // (chunks + 1) chunk i is rows [query_starts[i], query_starts[i + 1]) of the batch
  OwnedTensor kv_lens;       // (chunks) the sequence's tokens after the step: start + length
  int64_t max_query_len = 0;

  PagedAttentionBatch batch() const {
    return {.block_tables = block_tables, .query_starts = query_starts, .kv_lens = kv_lens,
            .max_query_len = max_query_len};
  }
};

class KvCache {
 public:
  virtual ~KvCache() = default;
  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;

  const KvLayout& layout() const { return layout_; }
  int64_t block_size() const { return block_size_; }
  int64_t num_blocks() const { return num_blocks_; }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  // Layer `layer` (of this rank's layers): (num_blocks, block_size, kv_heads, head_dim).
  Tensor keys(int layer) const { return keys_[layer]; }
  Tensor values(int layer) const { return values_[layer]; }
  size_t nbytes() const;

  // The most tokens one sequence can hold.
  virtual int64_t max_len() const = 0;
  // OK when every chunk of `batch` can be appended; else the reason, naming the chunk. Changes nothing.
  virtual absl::Status check(const TokenBatch& batch) const = 0;
  // Books the batch's tokens (check() must have returned OK for it) and returns where they go; the
  // forward's layers write their rows. Chunks of the batch are packed in order.
  KvStep append(const TokenBatch& batch);
  // The block table append(batch) would give each chunk's sequence (its tokens [0, start + length)), in chunk
  // order, booking nothing (check() must return OK): what a MirroredKvCache on another rank is told.
  virtual std::vector<std::vector<int32_t>> tables_for(const TokenBatch& batch) const = 0;

 protected:
  KvCache(const KvLayout& layout, int64_t num_blocks, int64_t block_size, DType dtype, Device device);
  // Books one chunk and returns the blocks of its sequence's tokens [0, start + length).
  virtual std::span<const int32_t> reserve(const SequenceChunk& chunk) = 0;

 private:
  KvLayout layout_;
  int64_t num_blocks_, block_size_;
  DType dtype_;
  Device device_;
  std::vector<OwnedTensor> keys_, values_;  // per layer (num_blocks, block_size, kv_heads, head_dim)
};

// num_slots sequences of up to max_len tokens, slot s in block s: today's preallocated cache, for a fixed
// batch (generate() with kDense, the golden tests). A chunk's sequence is its slot; nothing is tracked.
class DenseKvCache final : public KvCache {
 public:
  DenseKvCache(const KvLayout& layout, int num_slots, int64_t max_len, DType dtype, Device device);

  int num_slots() const { return static_cast<int>(num_blocks()); }
  int64_t max_len() const override { return block_size(); }
  // InvalidArgument for a slot outside [0, num_slots); ResourceExhausted past max_len.
  absl::Status check(const TokenBatch& batch) const override;
  std::vector<std::vector<int32_t>> tables_for(const TokenBatch& batch) const override;

 private:
  std::span<const int32_t> reserve(const SequenceChunk& chunk) override;

  std::vector<int32_t> slot_blocks_;  // (num_slots) slot_blocks_[s] = s: each slot's one-block table
};

}  // namespace plm::model
