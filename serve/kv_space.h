// KvSpace: the engine's one seam to the KV cache: which sequence holds which part of it. The scheduler asks it
// how much of a waiting sequence it holds already (prefix cache), for room when it admits the sequence and before
// every chunk grows one; when it says no, the scheduler preempts (the victim gives its room back and later
// recomputes). The model runner writes and reads cache() itself. Two spaces: PagedKvSpace (paged_kv_space.h, the
// default: blocks from a pool, grown on demand, prefix caching) and DenseKvSpace (dense_kv_space.h: a fixed slot
// per sequence, reserved whole at admission).
// Not thread-safe: the engine thread owns it; usage() is a value for metrics.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>

#include "absl/status/statusor.h"
#include "model/plm_model.h"
#include "model/text/kv_cache.h"
#include "serve/prefix_cache.h"
#include "serve/sequence.h"

namespace plm::serve {

struct KvUsage {
  int64_t capacity_tokens = 0;  // tokens the whole cache holds
  int64_t reserved_tokens = 0;  // tokens promised to running sequences (dense: their whole length; paged: blocks)
  int64_t filled_tokens = 0;    // tokens of running sequences computed into the cache
  int num_sequences = 0;        // sequences holding room
  int64_t bytes = 0;            // device memory of the cache
  // Blocks of block_tokens tokens (the dense cache: one block per slot). used + cached + free = num_blocks.
  int64_t block_tokens = 0;
  int64_t num_blocks = 0;
  int64_t blocks_used = 0;    // held by sequences, or promised to the chunks of the step being planned
  int64_t blocks_cached = 0;  // held by the prefix cache alone: reusable, evicted when room is needed
  int64_t blocks_free = 0;
  PrefixCacheCounters prefix_cache;  // zeros without one
};

class KvSpace {
 public:
  virtual ~KvSpace() = default;
  // Leading tokens of waiting `seq` whose keys and values the space holds already (its prefix cache): whole
  // blocks, at most num_tokens() - 1 so the last token still runs for its logits; 0 without a prefix cache.
  virtual int64_t cached_prefix(Sequence& seq) = 0;
  // Room for `seq` to hold its first `length` tokens, of which the first `cached` (what cached_prefix() just
  // said) are shared from the prefix cache: its slot, or nullopt when there is none now (nothing held then).
  virtual std::optional<int> admit(const Sequence& seq, int64_t cached, int64_t length) = 0;
  // Room in `slot` for `length` tokens in all; false when the space is exhausted (the caller preempts).
  virtual bool grow(int slot, int64_t length) = 0;
  // The step ran: seq.num_computed of its tokens are in the cache now (its full blocks become shareable).
  virtual void computed(int slot, Sequence& seq) = 0;
  virtual void release(int slot) = 0;
  virtual KvUsage usage() const = 0;
  // The longest sequence (prompt + new tokens) it can ever hold.
  virtual int64_t max_sequence_tokens() const = 0;
  // The cache the model runner steps on: a slot is a sequence of it (a dense slot, a paged sequence id).
  virtual model::KvCache& cache() = 0;
};

enum class KvCacheKind { kPaged, kDense };

// A space whose longest sequence would be shorter is a configuration error.
inline constexpr int64_t kMinSequenceTokens = 16;

struct KvSpaceConfig {
  KvCacheKind kind = KvCacheKind::kPaged;
  int64_t bytes = int64_t{1} << 30;  // the cache's keys and values over all layers
  int64_t block_tokens = 16;         // paged: tokens per block, the unit of prefix sharing
  bool prefix_caching = true;        // paged: keep full blocks for later sequences with the same prefix
};

// The space `config` asks for, holding up to max_num_seqs sequences of at most context_tokens tokens.
// InvalidArgument (with the arithmetic) when the bytes do not hold a useful cache.
absl::StatusOr<std::unique_ptr<KvSpace>> make_kv_space(const model::PlmModel& model, const KvSpaceConfig& config,
                                                       int max_num_seqs, int64_t context_tokens);

}  // namespace plm::serve
