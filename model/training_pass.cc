#include "model/training_pass.h"

#include <algorithm>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "core/arena.h"
#include "core/kernels/counter_random.h"
#include "core/kernels/ops.h"
#include "core/status_macros.h"
#include "model/weights/hf_names.h"

namespace plm::model {

namespace {

// One kind of media (images or videos) through tower + projector, with what its backward needs.
struct MediaPass {
  OwnedTensor input;        // (n, 3, img, img) in the model's dtype
  Tensor tower_out;         // (n, S, D)
  Tensor rows;              // (n, tokens_per_tile, H)
  VisionActivations vision;
  ProjectorActivations projector;
};

// The most scratch one backward call takes (each releases its own before the next runs).
size_t backward_scratch_bytes(const PlmConfig& c, const DecoderLayerDims& d, int64_t tokens, int64_t tiles,
                              DType dtype) {
  const size_t e = dtype_size(dtype), slack = 64 * Arena::kAlignment;
  const int64_t t = tokens;
  const size_t decoder = e * t * (4 * d.hidden + 3 * d.ffn + 2 * d.heads * d.head_dim + 2 * d.kv_heads * d.head_dim);
  const VisionConfig& v = c.vision;
  const int64_t tokens_v = tiles * v.seq_len(), patches = tiles * v.num_patches();
  const size_t vision = e * (tokens_v * (5 * v.embed_dim + v.mlp_hidden + 5 * v.embed_dim) + patches * v.embed_dim);
  const size_t projector = e * patches * (2 * c.text.hidden_size + v.embed_dim);
  return std::max({decoder, vision, projector}) + slack;
}

// Row t's dropout key: its sequence's key mixed with its position, so a sample draws the same masks in any
// micro-batch. Undefined when the adapters have no dropout.
absl::StatusOr<OwnedTensor> lora_row_keys(const PlmModel& model, const TrainingBatch& batch) {
  if (!model.lora() || model.lora()->dropout == 0.0) return OwnedTensor();
  if (batch.lora_dropout_keys.size() != batch.lengths.size()) {
    return absl::InvalidArgumentError(absl::StrCat("LoRA dropout needs one key per sequence: ",
                                                   batch.lora_dropout_keys.size(), " keys for ",
                                                   batch.lengths.size(), " sequences"));
  }
  OwnedTensor keys({static_cast<int64_t>(batch.ids.size())}, DType::kI64);
  int64_t* row = keys.data_as<int64_t>();
  for (size_t i = 0; i < batch.lengths.size(); ++i) {
    for (int64_t p = 0; p < batch.lengths[i]; ++p) {
      *row++ = static_cast<int64_t>(mix64(batch.lora_dropout_keys[i], static_cast<uint64_t>(p)));
    }
  }
  return to_device(keys, model.device());
}

}  // namespace

absl::StatusOr<MicroBatchLoss> train_forward_backward(const PlmModel& model, const PlmWeights& grad,
                                                      const TrainingBatch& batch, float loss_scale,
                                                      const TrainPassOptions& options, Stream s) {
  const PlmConfig& config = model.config();
  const int64_t t = static_cast<int64_t>(batch.ids.size()), hidden = config.text.hidden_size;
  if (model.parallel().pp_size() != 1) {
    return absl::UnimplementedError("the training pass runs on a rank holding every stage (pp = 1)");
  }
  if (static_cast<int64_t>(batch.targets.size()) != t ||
      std::accumulate(batch.lengths.begin(), batch.lengths.end(), int64_t{0}) != t || t == 0) {
    return absl::InvalidArgumentError(absl::StrCat("a micro-batch of ", t, " ids, ", batch.targets.size(),
                                                   " targets and sequence lengths adding up to ",
                                                   std::accumulate(batch.lengths.begin(), batch.lengths.end(), int64_t{0})));
  }
  const MediaTokens media_tokens = model.media_tokens();
  const DType dtype = model.dtype();
  const Device device = model.device();
  const LlamaDecoder& decoder = model.decoder();
  const bool vision_trainable = grad.vision.pos_embed.defined();
  const bool media_trainable = vision_trainable || grad.projector.linear_1.weight.defined();

  // Size one arena for the activations of every stage piece and the largest backward scratch.
  const int64_t image_tiles = batch.image_pixels.defined() ? batch.image_pixels.size(0) : 0;
  const int64_t video_frames = batch.video_pixels.defined() ? batch.video_pixels.size(0) : 0;
  const int64_t tiles = image_tiles + video_frames;
  const VisionConfig& v = config.vision;
  const int64_t per_tile = config.tokens_per_tile();
  const Recompute recompute = options.recompute;
  size_t bytes =
      decoder.activation_bytes(t, dtype, recompute) + 16 * static_cast<size_t>(t) * (hidden + 4) * dtype_size(dtype);
  for (const int64_t n : {image_tiles, video_frames}) {
    if (n == 0) continue;
    bytes += model.vision().activation_bytes(n, dtype, recompute) +
             model.projector().activation_bytes(n, v.embed_dim, dtype);
    bytes += 2 * dtype_size(dtype) * static_cast<size_t>(n) * (v.seq_len() * v.embed_dim + per_tile * hidden);
  }
  bytes += backward_scratch_bytes(config, decoder.layer_dims(), t, std::max(image_tiles, video_frames), dtype) +
           decoder.adapter_scratch_bytes(t);
  Arena arena(bytes, device);

  // Forward: media.
  MediaPass passes[2];
  const Tensor pixels_of[2] = {batch.image_pixels, batch.video_pixels};
  MediaEmbeddings media;
  for (int kind = 0; kind < 2; ++kind) {
    if (!pixels_of[kind].defined() || pixels_of[kind].size(0) == 0) continue;
    if (!model.has_vision()) return absl::FailedPreconditionError("media in a micro-batch of a rank without the vision tower");
    MediaPass& p = passes[kind];
    const int64_t n = pixels_of[kind].size(0);
    p.input = model.model_input(pixels_of[kind], s);
    p.tower_out = arena.alloc({n, v.seq_len(), v.embed_dim}, dtype);
    p.vision = model.vision().forward_train(arena, p.tower_out, p.input, recompute, s);
    p.rows = arena.alloc({n, per_tile, hidden}, dtype);
    p.projector = model.projector().forward_train(arena, p.rows, p.tower_out, s);
    (kind == 0 ? media.image : media.video) = p.rows.reshape({n * per_tile, hidden});
  }

  // Forward: embedding, scatter, layers, loss.
  const OwnedTensor ids_device = to_device(host_i32(batch.ids), device);
  std::vector<int32_t> labelled_rows, labelled_targets;  // the rows that reach the head (HeadActivations)
  for (int64_t i = 0; i < t; ++i) {
    if (batch.targets[i] == kIgnoreTarget) continue;
    labelled_rows.push_back(static_cast<int32_t>(i));
    labelled_targets.push_back(batch.targets[i]);
  }
  const auto num_labelled = static_cast<int64_t>(labelled_rows.size());
  const OwnedTensor rows_device = to_device(host_i32(labelled_rows), device);
  const OwnedTensor targets_device = to_device(host_i32(labelled_targets), device);
  TokenBatch sequences;
  for (size_t i = 0; i < batch.lengths.size(); ++i) sequences.chunks.push_back({static_cast<int>(i), 0, batch.lengths[i]});
  const OwnedTensor positions = LlamaDecoder::positions(sequences, device);
  const PackedCausalAttention attention(batch.lengths);
  const Tensor x = arena.alloc({t, hidden}, dtype);
  decoder.embed(x, ids_device, s);
  PLM_RETURN_IF_ERROR(scatter_media(x, batch.ids, media, media_tokens, s));
  DecoderActivations acts = decoder.allocate_activations(arena, t, dtype, recompute);
  PLM_ASSIGN_OR_RETURN(const OwnedTensor row_keys, lora_row_keys(model, batch));
  decoder.forward_layers_train(x, positions, attention, acts, {.scratch = &arena, .row_keys = row_keys}, s);
  const HeadActivations head = decoder.head_loss_forward(arena, x, rows_device, targets_device, s);

  MicroBatchLoss result;
  const OwnedTensor losses = to_device(head.loss, Device::cpu());
  for (int64_t i = 0; i < num_labelled; ++i) result.loss_sum += losses.data_as<float>()[i];
  result.labelled_tokens = num_labelled;
  result.vision_tiles = tiles;
  PlmWeights any_grad = grad;
  bool trains_anything = false;
  any_grad.for_each_parameter([&](const std::string&, Tensor& t) { trains_anything |= t.defined(); });
  if (!trains_anything) {  // a loss evaluation: nothing to differentiate
    result.arena_bytes = arena.peak_bytes();
    return result;
  }

  // Backward: loss, layers, embedding; then the media rows through projector and tower.
  const Tensor dloss = arena.alloc({num_labelled}, DType::kF32);
  fill(dloss, loss_scale, s);
  const Tensor dx = arena.alloc({t, hidden}, dtype);
  decoder.head_loss_backward(grad.text, head, dx, dloss, targets_device, arena, s);
  const auto finished = [&](const std::string& prefix) {
    if (options.gradients_final) options.gradients_final(prefix);
  };
  finished(kLmHeadName);
  finished(text_name("norm."));
  decoder.backward_layers(grad.text, acts, dx, positions, attention, arena, row_keys, s,
                          [&](int layer) { finished(text_layer_name(layer, "")); });
  MediaEmbeddings dmedia;
  for (int kind = 0; kind < 2; ++kind) {
    if (!passes[kind].rows.defined() || !media_trainable) continue;
    const Tensor rows = arena.alloc(passes[kind].rows.shape(), dtype);
    (kind == 0 ? dmedia.image : dmedia.video) = rows.reshape({rows.size(0) * per_tile, hidden});
  }
  gather_media_grad(dmedia, dx, batch.ids, media_tokens, s);
  zero_media_rows(dx, batch.ids, media_tokens, s);
  decoder.embed_backward(grad.text, ids_device, dx, s);
  finished(kEmbedTokensName);
  for (int kind = 0; kind < 2; ++kind) {
    const MediaPass& p = passes[kind];
    if (!p.rows.defined() || !media_trainable) continue;
    const Tensor drows = (kind == 0 ? dmedia.image : dmedia.video).reshape(p.rows.shape());
    const Tensor dtower = vision_trainable ? arena.alloc(p.tower_out.shape(), dtype) : Tensor();
    model.projector().backward(grad.projector, p.projector, dtower, drows, arena, s);
    if (vision_trainable) model.vision().backward(grad.vision, p.vision, dtower, arena, s);
  }
  finished(kProjectorPrefix);
  finished(kVisionPrefix);
  result.arena_bytes = arena.peak_bytes();
  return result;
}

}  // namespace plm::model
