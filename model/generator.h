// generate(): prompts (token ids + pixel tensors) -> new tokens: a thin loop over PlmModel::step(), one step
// prefilling every prompt, then one step per new token over the sequences still running. Stops a sequence
// on an EOS id, at max_new_tokens, at the cache length, or when its stop callback says so (stop strings).
#pragma once

#include <functional>
#include <vector>

#include "absl/status/statusor.h"
#include "model/plm_model.h"
#include "model/sampler.h"

namespace plm::model {

struct GenerationRequest {
  std::vector<int32_t> prompt_ids;  // placeholders already expanded (256 per tile/frame for PLM)
  Tensor image_pixels;              // (tiles of all images, 3, img, img) or undefined
  Tensor video_pixels;              // (frames of all videos, 3, img, img) or undefined
  SamplingParams sampling;
};

enum class KvCacheKind {
  kPaged,  // PagedKvCache: blocks of kv_block_size tokens, as many as the prompts and new tokens take
  kDense,  // DenseKvCache: one slot of the longest prompt + max_new_tokens per request
};

struct GenerationOptions {
  int max_new_tokens = 128;  // 0: every prompt unchanged, no forward; negative: InvalidArgument
  KvCacheKind kv_cache = KvCacheKind::kPaged;
  // Tokens per paged block. Decode steps hand blocks to the sequences in turn, so a sequence's blocks end up
  // apart; CPU decode attention then costs ~1.2x the dense cache's with blocks of 16 and ~1.05x with 64
  // (8 sequences x 4096 keys, one thread).
  int64_t kv_block_size = 64;
  std::vector<int32_t> eos_ids = {128001, 128009};
  // Called after each new token with the sequence index and its tokens so far; true stops it.
  std::function<bool(int, const std::vector<int32_t>&)> should_stop;
};

struct GenerationResult {
  std::vector<int32_t> tokens;  // generated ids, including the EOS that stopped it (if any)
  bool hit_eos = false;
  int64_t prompt_tokens = 0;
};

// Generates for every request together. Errors (bad prompt, media/placeholder mismatch) name the request.
absl::StatusOr<std::vector<GenerationResult>> generate(const PlmModel& model,
                                                       const std::vector<GenerationRequest>& requests,
                                                       const GenerationOptions& options);

}  // namespace plm::model
