// The input and the result of one training micro-batch (model/training_pass.h, model/stage_pass.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace plm::model {

inline constexpr int32_t kIgnoreTarget = -100;

struct TrainingBatch {
  std::vector<int32_t> ids;      // (T) the micro-batch's sequences, packed
  std::vector<int32_t> targets;  // (T) the next token where it is labelled, else kIgnoreTarget
  std::vector<int64_t> lengths;  // tokens per sequence, adding up to T; each starts at position 0
  Tensor image_pixels;           // (tiles of every image, 3, img, img) in placeholder order, or undefined
  Tensor video_pixels;           // (frames of every video, 3, img, img), or undefined
  // One key per sequence for the LoRA dropout masks (model/lora.h lora_dropout_key: seed, step and the
  // sample's index in the step); required when the model's adapters have dropout, ignored otherwise.
  std::vector<uint64_t> lora_dropout_keys;
};

struct MicroBatchLoss {
  double loss_sum = 0.0;        // sum of the per-token cross-entropies (f32 each, summed in double)
  int64_t labelled_tokens = 0;  // targets that are not kIgnoreTarget
  int64_t vision_tiles = 0;     // tiles + frames run through the tower (0: no ViT pass)
  size_t arena_bytes = 0;       // activation + scratch memory of this micro-batch (the arena's peak)
};

}  // namespace plm::model
