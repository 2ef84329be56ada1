// A micro-batch as the training pass takes it (model/training_pass.h), built from SFT samples: their token
// ids packed back to back, next-token targets from the label masks (position i's target is ids[i + 1] when
// label_mask[i + 1] is set, else kIgnoreTarget; a sequence's last position has none), and every image tile
// and video frame concatenated in sample order. Owns the pixel buffers the batch's views point into.
#pragma once

#include <vector>

#include "core/tensor.h"
#include "data/sft_sample.h"
#include "model/training_pass.h"

namespace plm::trainer {

struct MicroBatch {
  model::TrainingBatch batch;  // views into the buffers below
  OwnedTensor image_pixels;    // f32 (tiles, 3, img, img), or empty
  OwnedTensor video_pixels;    // f32 (frames, 3, img, img), or empty

  MicroBatch() = default;
  MicroBatch(MicroBatch&&) noexcept = default;
  MicroBatch& operator=(MicroBatch&&) noexcept = default;
};

// samples: in the order they are packed; may be empty (a rank with no work in this micro-batch).
MicroBatch pack_micro_batch(const std::vector<const data::SftSample*>& samples, Device device);

}  // namespace plm::trainer
