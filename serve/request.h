// What a client asks the engine for and what it hears back: the prepared prompt (token ids with media
// placeholders expanded, the tiles / frames the placeholders stand for and their content keys), the generation
// parameters, and the updates the engine streams to the request's callback.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "core/tensor.h"
#include "model/sampler.h"
#include "serve/media_key.h"

namespace plm::serve {

using Clock = std::chrono::steady_clock;

// The tiles of every image (or the frames of every video) of one prompt, in prompt order.
struct MediaTiles {
  OwnedTensor pixels;          // f32 (N, 3, h, w) on the host; undefined when N = 0
  std::vector<MediaKey> keys;  // N
  int64_t count() const { return static_cast<int64_t>(keys.size()); }
};

struct PreparedPrompt {
  std::vector<int32_t> ids;  // placeholders expanded: tokens_per_tile copies per tile / frame
  MediaTiles images;
  MediaTiles videos;
};

struct GenerationParams {
  int64_t max_tokens = 16;        // new tokens at most (>= 1)
  model::SamplingParams sampling;  // temperature 0: greedy, identical to `plm generate`
  std::vector<std::string> stop;  // the text ends before the first of these (none of it is returned)
};

enum class FinishReason { kStop, kLength, kCancelled, kError };
// OpenAI's names: "stop", "length"; "cancelled" and "error" never reach a client that is still listening.
const char* finish_reason_name(FinishReason reason);

struct Usage {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  int64_t cached_prompt_tokens = 0;  // prompt tokens whose keys and values came from the prefix cache
  int64_t cached_media_items = 0;   // tiles / frames whose embeddings came from a cache (encoder or prefix)
  int64_t encoded_media_items = 0;  // tiles / frames the vision tower encoded for this request
};

// One callback invocation: what is new since the last one. The last update has `finish` set.
struct RequestUpdate {
  std::string text;                  // new text: never splits a UTF-8 character, never part of a stop string
  std::vector<int32_t> token_ids;    // new tokens (the EOS that ended the reply included)
  std::optional<FinishReason> finish;
  absl::Status error;                // set when finish == kError
  Usage usage;                       // so far
  double ttft_s = 0;                 // from arrival to the first token (0 until there is one)
  double latency_s = 0;              // from arrival to this update
  // The final update of a request with pool_media_embeddings: the mean of the post-projector rows of all its
  // tiles / frames, (H) f32; empty otherwise.
  std::vector<float> media_embedding;
};

// Called on the engine thread: it must return quickly (post the work elsewhere) and must not call the engine
// back synchronously except cancel().
using UpdateCallback = std::function<void(const RequestUpdate&)>;

struct EngineRequest {
  std::string id;  // unique among the requests in flight
  PreparedPrompt prompt;
  GenerationParams params;
  UpdateCallback on_update;
  Clock::time_point arrival = Clock::now();  // TTFT and latency count from here (e.g. the HTTP request's receipt)
  // Opt-in: the final update carries media_embedding. Needs an engine without prefix caching (a cached prefix
  // skips its items' rows).
  bool pool_media_embeddings = false;
};

}  // namespace plm::serve
