#include "plan/activation_memory.h"

#include <algorithm>

#include "core/check.h"
#include "core/kernels/kernel_types.h"

namespace plm::plan {

namespace {

constexpr int64_t kF32 = 4;

// One block's activations by tier (model/recompute.h); every field in bytes.
struct Tiers {
  int64_t input = 0, expensive = 0, cheap = 0, scratch = 0;

  int64_t all() const { return input + expensive + cheap + scratch; }
  int64_t saved(model::Recompute recompute) const {
    switch (recompute) {
      case model::Recompute::kNone: return input + expensive + cheap;
      case model::Recompute::kSelective: return input + expensive;
      case model::Recompute::kFull: return input;
    }
    PLM_CHECK(false) << "unhandled Recompute " << static_cast<int>(recompute);
    return input;
  }
  int64_t workspace(model::Recompute recompute) const { return all() - saved(recompute); }
};

// Decoder layer, T tokens: input T H e | expensive (2 T + T h) 4 + (T H + 2 T h Dh + 2 T k Dh) e |
// cheap (2 T H + 3 T f) e | scratch T H e.
Tiers decoder_tiers(const DecoderWidths& w, int64_t t, int64_t e) {
  return {.input = t * w.hidden * e,
          .expensive = (2 * t + t * w.heads) * kF32 +
                       (t * w.hidden + 2 * t * w.heads * w.head_dim + 2 * t * w.kv_heads * w.head_dim) * e,
          .cheap = (2 * t * w.hidden + 3 * t * w.ffn) * e,
          .scratch = t * w.hidden * e};
}

// Vision block, N = n S tokens: input N D e | expensive (4 N + N h) 4 + (3 N D + 4 N h Dh) e |
// cheap (2 N D + 2 N m) e | scratch (N D + N h Dh) e.
Tiers vision_tiers(const model::VisionConfig& v, const VisionWidths& w, int64_t tiles, int64_t e) {
  const int64_t n = tiles * v.seq_len(), d = v.embed_dim, dh = v.head_dim();
  return {.input = n * d * e,
          .expensive = (4 * n + n * w.heads) * kF32 + (3 * n * d + 4 * n * w.heads * dh) * e,
          .cheap = (2 * n * d + 2 * n * w.mlp) * e,
          .scratch = (n * d + n * w.heads * dh) * e};
}

// The tower's tensors outside its blocks (patches, embedded patches, the stream, norm statistics), the
// projector's, the tower output and the rows it scatters into the sequence.
int64_t media_outside_blocks(const model::PlmConfig& config, int64_t tiles, int64_t e, bool for_backward) {
  const model::VisionConfig& v = config.vision;
  const int64_t patches = tiles * v.num_patches(), tokens = tiles * v.seq_len(), d = v.embed_dim;
  const int64_t p2 = int64_t{v.patch_size} * v.patch_size, h = config.text.hidden_size;
  int64_t bytes = patches * (3 * p2 + d) * e + 2 * tokens * d * e;  // patches, embedded, stream, x_pre
  if (for_backward && v.pre_norm) bytes += 2 * tokens * kF32;
  if (for_backward && v.post_norm) bytes += tokens * d * e + 2 * tokens * kF32;
  const bool pooled = config.tokens_per_tile() != v.num_patches();
  bytes += patches * (d + 2 * h + (pooled ? h : 0)) * e;                 // projector: features, pre_gelu, hidden, y
  bytes += tokens * d * e + tiles * config.tokens_per_tile() * h * e;  // tower output, projected rows
  return bytes;
}

}  // namespace

ActivationMemory training_activations(const model::PlmConfig& config, const StageParameters& stage, int tp,
                                      const MicroBatchShape& batch, model::Recompute recompute, DType dtype) {
  const int64_t e = static_cast<int64_t>(dtype_size(dtype)), t = batch.tokens;
  const model::TextConfig& text = config.text;
  const DecoderWidths w = decoder_widths(text, tp);
  const Tiers layer = decoder_tiers(w, t, e);
  const int64_t hidden_state = t * w.hidden * e;
  ActivationMemory a;
  a.decoder_saved = stage.num_layers * layer.saved(recompute) + hidden_state;  // + the stack's input
  a.workspace = stage.num_layers > 0 ? layer.workspace(recompute) : 0;
  // model/text/decoder_layer.cc decoder_layer_backward: dh, dnorm; dact, dgate, dup; dattn, dq; dk, dv.
  int64_t scratch = e * t * (2 * w.hidden + 3 * w.ffn + 2 * w.heads * w.head_dim + 2 * w.kv_heads * w.head_dim);
  if (stage.last_stage) {
    a.head_saved = 2 * hidden_state + 4 * t * kF32;  // x, normed; rstd, lse, loss, dloss
    scratch = std::max(scratch, hidden_state);       // dnormed
    a.loss_logits = t * std::min<int64_t>(text.vocab_size / tp, CrossEntropyOptions{}.vocab_chunk) * e;
  }
  if (stage.first_stage && batch.tiles > 0) {
    const model::VisionConfig& v = config.vision;
    const VisionWidths vw = vision_widths(v, tp);
    const Tiers block = vision_tiers(v, vw, batch.tiles, e);
    a.media_saved = v.depth * block.saved(recompute) + media_outside_blocks(config, batch.tiles, e, true);
    a.workspace += block.workspace(recompute);
    const int64_t n = batch.tiles * v.seq_len(), patches = batch.tiles * v.num_patches(), d = v.embed_dim;
    // model/vision/vision_block.cc vision_block_backward: 3 (N, D), dhidden, 5 (N, h Dh); the tower's own
    // stream gradient under a final norm; the projector's dy, dhidden, dfeatures.
    const int64_t vision_scratch = e * n * (3 * d + vw.mlp + 5 * vw.heads * v.head_dim()) + (v.post_norm ? e * n * d : 0);
    const int64_t projector_scratch = e * patches * (2 * int64_t{text.hidden_size} + d);
    // model/training_pass.cc: the rows' and the tower output's gradients live through both.
    const int64_t media_grads = e * (n * d + batch.tiles * config.tokens_per_tile() * text.hidden_size);
    scratch = std::max(scratch, media_grads + std::max(vision_scratch, projector_scratch));
  }
  a.backward_scratch = scratch + hidden_state;  // + dx, alive through the whole backward
  return a;
}

int64_t inference_activation_bytes(const model::PlmConfig& config, const StageParameters& stage, int tp,
                                   int64_t tokens, int64_t rows, int64_t tiles, DType dtype) {
  const int64_t e = static_cast<int64_t>(dtype_size(dtype)), t = tokens;
  const DecoderWidths w = decoder_widths(config.text, tp);
  const Tiers layer = decoder_tiers(w, t, e);
  // A layer's forward touches everything but the backward-only statistics; plus the hidden state and the
  // f32 logits rows every stage receives (the last stage's TP all-gather, then the PP broadcast).
  int64_t bytes = layer.all() - (2 * t + t * w.heads) * kF32 + t * w.hidden * e +
                  rows * int64_t{config.text.vocab_size} * kF32;
  if (stage.first_stage && tiles > 0) {
    const model::VisionConfig& v = config.vision;
    const Tiers block = vision_tiers(v, vision_widths(v, tp), tiles, e);
    bytes += block.all() + media_outside_blocks(config, tiles, e, false);
  }
  return bytes;
}

}  // namespace plm::plan
