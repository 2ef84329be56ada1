// The input and output of PlmModel::step(): one engine iteration over a mixed batch, prefill chunks of some
// sequences and single decode tokens of others, each chunk continuing its sequence in a KV cache
// (kv_cache.h), with the media rows of its own placeholders. The model samples nothing: the engine reads
// the logits the chunks ask for (a prefill chunk that does not end its prompt asks for none).
#pragma once

#include <cstdint>
#include <limits>
#include <vector>

#include "core/tensor.h"
#include "model/media_scatter.h"
#include "model/text/token_batch.h"

namespace plm::model {

// The logits a chunk asks for.
enum class ChunkLogits {
  kNone,  // none: a prefill chunk whose sequence samples nothing after it
  kLast,  // its last token's: the next-token distribution of its sequence
  kAll,   // every position's (scoring, tests)
};

struct StepChunk {
  SequenceId sequence = 0;        // the dense cache's slot, or the paged cache's sequence id
  int64_t start = 0;              // tokens of the sequence already cached (the paged cache's length(sequence))
  std::vector<int32_t> ids = {};  // the chunk's tokens, placeholders expanded; not empty
  MediaRows media = {};           // rows for exactly this chunk's placeholders (first pipeline stage; else empty)
  // Sequence positions from here on hold generated tokens: an id there that equals a placeholder id is an
  // ordinary token (embedded from the table, as HF does), not a media slot. The prompt's length; the default
  // treats every id of the chunk as prompt.
  int64_t media_end = std::numeric_limits<int64_t>::max();
  ChunkLogits logits = ChunkLogits::kLast;
};

struct StepBatch {
  std::vector<StepChunk> chunks;  // in packing order, at most one per sequence
};

// Passing the same StepOutput to every step() reuses its buffer (a fresh (R, V) f32 tensor per step costs
// page faults on the host: ~10 % of a 64-sequence decode step of the tiny model).
struct StepOutput {
  OwnedTensor buffer;               // (>= R, V) f32 on the model's device; grows, never shrinks
  Tensor logits;                    // (R, V) the first R rows of buffer, every rank; undefined when R = 0
  std::vector<int64_t> first_rows;  // (chunks + 1): chunk i owns rows [first_rows[i], first_rows[i + 1])

  // (rows, V) of chunk i: none, its last token's logits, or every position's.
  Tensor chunk_logits(size_t i) const { return logits.slice(0, first_rows[i], first_rows[i + 1]); }
  // (1, V) the logits of chunk i's last token (kLast or kAll): the next-token distribution of its sequence.
  Tensor last_logits(size_t i) const { return logits.slice(0, first_rows[i + 1] - 1, first_rows[i + 1]); }
};

}  // namespace plm::model
