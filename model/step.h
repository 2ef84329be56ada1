// The input and output of PlmModel::step(): one engine iteration over a mixed batch, prefill chunks of some
// sequences and single decode tokens of others, each chunk continuing its sequence in a KV cache
// (kv_cache.h), with the media rows of its own placeholders. The model samples nothing: the engine reads
// each chunk's logits.
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "model/media_scatter.h"
#include "model/text/token_batch.h"

namespace plm::model {

struct StepChunk {
  SequenceId sequence = 0;        // the dense cache's slot, or the paged cache's sequence id
  int64_t start = 0;              // tokens of the sequence already cached (the paged cache's length(sequence))
  std::vector<int32_t> ids = {};  // the chunk's tokens, placeholders expanded; not empty
  MediaRows media = {};           // rows for exactly this chunk's placeholders (first pipeline stage; else empty)
  bool all_logits = false;        // logits of every position of the chunk, else of its last token only
};

struct StepBatch {
  std::vector<StepChunk> chunks;  // in packing order, at most one per sequence
};

struct StepOutput {
  OwnedTensor logits;               // (R, V) f32 on the model's device, every rank
  std::vector<int64_t> first_rows;  // (chunks + 1): chunk i owns rows [first_rows[i], first_rows[i + 1])

  // (rows, V) of chunk i: its last token's logits, or every position's with all_logits.
  Tensor chunk_logits(size_t i) const { return logits.view().slice(0, first_rows[i], first_rows[i + 1]); }
  // (1, V) the logits of chunk i's last token: the next-token distribution of its sequence.
  Tensor last_logits(size_t i) const { return logits.view().slice(0, first_rows[i + 1] - 1, first_rows[i + 1]); }
};

}  // namespace plm::model
