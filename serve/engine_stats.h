// EngineStats: a snapshot of the engine's state and totals, published after every step for /metrics, logs and
// benchmarks (a plain value; copying it is the thread-safe way to read it).
#pragma once

#include <cstdint>

#include "serve/encoder_cache.h"
#include "serve/kv_space.h"

namespace plm::serve {

struct EngineStats {
  int num_waiting = 0;                 // submitted, not yet admitted (preempted ones included)
  int num_running = 0;                 // holding KV room
  KvUsage kv;
  EncoderCacheCounters encoder_cache;
  int64_t num_steps = 0;
  int64_t num_preemptions = 0;
  int64_t prompt_tokens_computed = 0;  // prefill tokens through the model (recomputation included)
  int64_t generated_tokens = 0;
  int64_t media_items_encoded = 0;     // tiles / frames through the vision tower
  int64_t requests_finished = 0;       // stop or length
  int64_t requests_cancelled = 0;
  int64_t requests_failed = 0;
  // Wall time of the engine's steps, split: vision tower, decoder forward, and the rest (scheduling, packing,
  // sampling, detokenizing, callbacks): the engine's own overhead.
  double step_s = 0;
  double vision_s = 0;
  double forward_s = 0;
  // The forward time and tokens of steps that only decoded (one token per sequence): the per-token decode cost,
  // apart from prefill's (disaggregated serving sizes its pools from both).
  double decode_forward_s = 0;
  int64_t decode_step_tokens = 0;
  int64_t decode_tokens = 0;  // one-token chunks that sample, in any step (decode_step_tokens included)
};

}  // namespace plm::serve
