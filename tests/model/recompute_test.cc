// Activation recomputation (model/recompute.h) on the tiny golden checkpoint, CPU f32: none, selective and
// full give bitwise the same loss and gradients (the rebuilt tensors come from the same kernels on the same
// inputs; with LoRA dropout, from the same row keys), and the activation bytes of the decoder and the vision tower equal the analytic count of each
// policy and strictly decrease none > selective > full, as does the training pass's arena peak.
#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "core/arena.h"
#include "model/flat_parameters.h"
#include "model/lora.h"
#include "model/recompute.h"
#include "model/training_pass.h"
#include "tests/model/training_samples.h"

namespace plm::model {
namespace {

using testing::load_sample;
using testing::pack;
using testing::Sample;

constexpr Recompute kPolicies[] = {Recompute::kNone, Recompute::kSelective, Recompute::kFull};

size_t round_up(size_t bytes) { return (bytes + Arena::kAlignment - 1) / Arena::kAlignment * Arena::kAlignment; }

// Bytes of one arena allocation of `elements` of `bytes_each`, with the padding up to the next one's start.
// (activation_bytes() leaves out the last allocation's padding: the tests compare it rounded up.)
size_t aligned(int64_t elements, size_t bytes_each) { return round_up(static_cast<size_t>(elements) * bytes_each); }

// A block's bytes per tier; a stack of L blocks takes L * (what the policy saves) + (the rest, once).
struct TierBytes {
  size_t input = 0, expensive = 0, cheap = 0, scratch = 0;

  size_t stack(int64_t blocks, Recompute recompute) const {
    const size_t n = static_cast<size_t>(blocks);
    switch (recompute) {
      case Recompute::kNone: return n * (input + expensive + cheap) + scratch;
      case Recompute::kSelective: return n * (input + expensive) + cheap + scratch;
      case Recompute::kFull: return n * input + expensive + cheap + scratch;
    }
    return 0;
  }
};

// decoder_layer.h: x | rstd1, rstd2, lse, x_mid, q, k, v, attn | h1, h2, gate, up, act | y.
TierBytes decoder_layer_bytes(const DecoderLayerDims& d, int64_t t, size_t e) {
  return {.input = aligned(t * d.hidden, e),
          .expensive = 2 * aligned(t, 4) + aligned(t * d.heads, 4) + aligned(t * d.hidden, e) +
                       2 * aligned(t * d.heads * d.head_dim, e) + 2 * aligned(t * d.kv_heads * d.head_dim, e),
          .cheap = 2 * aligned(t * d.hidden, e) + 3 * aligned(t * d.ffn, e),
          .scratch = aligned(t * d.hidden, e)};
}

// vision_block.h for n tiles of S tokens (N = n S): x | mean1, rstd1, mean2, rstd2, lse, x_mid, y1, y2, q, k,
// v, attn | h1, h2, pre_gelu, hidden | qk, scaled.
TierBytes vision_block_bytes(const VisionConfig& v, int64_t n, size_t e) {
  const int64_t tokens = n * v.seq_len(), d = v.embed_dim, heads = v.num_heads * v.head_dim();
  return {.input = aligned(tokens * d, e),
          .expensive = 4 * aligned(tokens, 4) + aligned(n * v.num_heads * v.seq_len(), 4) +
                       3 * aligned(tokens * d, e) + 4 * aligned(tokens * heads, e),
          .cheap = 2 * aligned(tokens * d, e) + 2 * aligned(tokens * v.mlp_hidden, e),
          .scratch = aligned(tokens * heads, e) + aligned(tokens * d, e)};
}

// The tower's own tensors around the blocks (vision_tower.h): patches, embedded, stream, x_pre and the
// pre/post norms' inputs and statistics.
size_t vision_tower_own_bytes(const VisionConfig& v, int64_t n, size_t e) {
  const int64_t p = v.patch_size, tokens = n * v.seq_len(), patches = n * v.num_patches();
  size_t bytes =
      aligned(patches * 3 * p * p, e) + aligned(patches * v.embed_dim, e) + 2 * aligned(tokens * v.embed_dim, e);
  if (v.pre_norm) bytes += 2 * aligned(tokens, 4);
  if (v.post_norm) bytes += aligned(tokens * v.embed_dim, e) + 2 * aligned(tokens, 4);
  return bytes;
}

using Recomputation = testing::TinyTrainingTest;

// The loss and the gradients (of the `trainable` parameters) under every policy equal those of none bitwise.
void expect_bitwise_equal_gradients(const PlmModel& model, const TrainingBatch& batch,
                                    const std::function<bool(const std::string&)>& trainable) {
  std::vector<FlatParameters> grads;
  std::vector<MicroBatchLoss> results;
  for (const Recompute r : kPolicies) {
    grads.emplace_back(model.weights(), DType::kF32, Device::cpu(), trainable);
    absl::StatusOr<MicroBatchLoss> result =
        train_forward_backward(model, grads.back().views(), batch, 1.0f / 100.0f, {.recompute = r});
    ASSERT_TRUE(result.ok()) << recompute_text(r) << ": " << result.status();
    results.push_back(*result);
  }
  const OwnedTensor reference = to_device(grads[0].flat(), Device::cpu());
  ASSERT_GT(reference.numel(), 0);
  for (size_t i = 1; i < grads.size(); ++i) {
    const std::string policy(recompute_text(kPolicies[i]));
    EXPECT_EQ(results[i].loss_sum, results[0].loss_sum) << policy;
    const OwnedTensor g = to_device(grads[i].flat(), Device::cpu());
    ASSERT_EQ(g.numel(), reference.numel());
    EXPECT_EQ(std::memcmp(g.view().data(), reference.view().data(), reference.view().nbytes()), 0)
        << policy << " gradients differ";
  }
}

TEST_F(Recomputation, GradientsAreBitwiseEqualForEveryPolicy) {
  std::vector<OwnedTensor> storage;
  expect_bitwise_equal_gradients(*model_, pack({&image_, &video_, &text_}, storage),
                                 [](const std::string&) { return true; });
}

// The rebuilt adapted projections draw the forward's dropout masks again (the same row keys).
TEST_F(Recomputation, LoraWithDropoutGradientsAreBitwiseEqualForEveryPolicy) {
  const LoraSpec spec{.rank = 4, .alpha = 8.0, .dropout = 0.3,
                      .targets = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"},
                      .dora = true, .init_seed = 3};
  ASSERT_TRUE(model_->attach_lora(spec).ok());
  std::vector<OwnedTensor> storage;
  TrainingBatch batch = pack({&image_, &text_}, storage);
  batch.lora_dropout_keys = {lora_dropout_key(5, 1, 0), lora_dropout_key(5, 1, 1)};
  expect_bitwise_equal_gradients(*model_, batch, is_lora_parameter);
}

TEST_F(Recomputation, ActivationBytesMatchTheAnalyticCountAndDecrease) {
  const PlmConfig& c = model_->config();
  const LlamaDecoder& decoder = model_->decoder();
  const int64_t tokens = 100, tiles = 5;
  const size_t e = dtype_size(DType::kF32);
  const TierBytes layer = decoder_layer_bytes(decoder.layer_dims(), tokens, e);
  const TierBytes block = vision_block_bytes(c.vision, tiles, e);
  size_t previous_decoder = 0, previous_vision = 0;
  for (const Recompute r : kPolicies) {
    const std::string policy(recompute_text(r));
    const size_t decoder_bytes = decoder.activation_bytes(tokens, DType::kF32, r);
    const size_t vision_bytes = model_->vision().activation_bytes(tiles, DType::kF32, r);
    EXPECT_EQ(round_up(decoder_bytes), layer.stack(c.text.num_layers, r)) << policy;
    EXPECT_EQ(round_up(vision_bytes), vision_tower_own_bytes(c.vision, tiles, e) + block.stack(c.vision.depth, r)) << policy;
    if (r != Recompute::kNone) {
      EXPECT_LT(decoder_bytes, previous_decoder) << policy;
      EXPECT_LT(vision_bytes, previous_vision) << policy;
    }
    previous_decoder = decoder_bytes;
    previous_vision = vision_bytes;
  }
}

// The arena's peak falls by exactly the activations a policy drops: the rebuilt tensors live in the shared
// workspace and the input copy of full recomputation fits in the backward's scratch.
TEST_F(Recomputation, ArenaPeakFallsByTheDroppedActivations) {
  std::vector<OwnedTensor> storage;
  const TrainingBatch batch = pack({&image_, &video_, &text_}, storage);
  const int64_t tokens = static_cast<int64_t>(batch.ids.size());
  const int64_t images = batch.image_pixels.size(0), frames = batch.video_pixels.size(0);
  const auto activations = [&](Recompute r) {
    return round_up(model_->decoder().activation_bytes(tokens, DType::kF32, r)) +
           round_up(model_->vision().activation_bytes(images, DType::kF32, r)) +
           round_up(model_->vision().activation_bytes(frames, DType::kF32, r));
  };
  FlatParameters grads(model_->weights(), DType::kF32, Device::cpu());
  size_t none_peak = 0, previous_peak = 0;
  for (const Recompute r : kPolicies) {
    absl::StatusOr<MicroBatchLoss> result =
        train_forward_backward(*model_, grads.views(), batch, 0.01f, {.recompute = r});
    ASSERT_TRUE(result.ok()) << result.status();
    if (r == Recompute::kNone) {
      none_peak = result->arena_bytes;
    } else {
      EXPECT_LT(result->arena_bytes, previous_peak) << recompute_text(r);
      EXPECT_EQ(none_peak - result->arena_bytes, activations(Recompute::kNone) - activations(r)) << recompute_text(r);
    }
    previous_peak = result->arena_bytes;
  }
}

}  // namespace
}  // namespace plm::model
