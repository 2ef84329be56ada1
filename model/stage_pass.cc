#include "model/stage_pass.h"

#include <algorithm>
#include <vector>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "core/kernels/counter_random.h"
#include "core/kernels/ops.h"
#include "core/status_macros.h"
#include "model/weights/hf_names.h"

namespace plm::model {

namespace {

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

int64_t count_of(const Tensor& pixels) { return pixels.defined() ? pixels.size(0) : 0; }

// The first stage's media must fill their placeholders exactly (checked before anything runs).
absl::Status check_media(const PlmModel& model, const TrainingBatch& batch) {
  const MediaTokens tokens = model.media_tokens();
  const int64_t per_tile = model.config().tokens_per_tile();
  const std::pair<const char*, std::pair<int32_t, int64_t>> kinds[] = {
      {"image", {tokens.image, count_of(batch.image_pixels)}}, {"video", {tokens.video, count_of(batch.video_pixels)}}};
  for (const auto& [kind, token_and_tiles] : kinds) {
    const auto [token, tiles] = token_and_tiles;
    const int64_t placeholders = std::count(batch.ids.begin(), batch.ids.end(), token);
    if (placeholders != tiles * per_tile) {
      return absl::InvalidArgumentError(absl::StrCat("a micro-batch with ", placeholders, " ", kind,
                                                     " placeholders and ", tiles, " ", kind, " tiles of ", per_tile,
                                                     " rows each"));
    }
  }
  if ((count_of(batch.image_pixels) > 0 || count_of(batch.video_pixels) > 0) && !model.has_vision()) {
    return absl::FailedPreconditionError("media in a micro-batch of a rank without the vision tower");
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status StagePass::check(const PlmModel& model, const TrainingBatch& batch) {
  const int64_t t = static_cast<int64_t>(batch.ids.size());
  const int64_t summed = std::accumulate(batch.lengths.begin(), batch.lengths.end(), int64_t{0});
  if (static_cast<int64_t>(batch.targets.size()) != t || summed != t || t == 0) {
    return absl::InvalidArgumentError(absl::StrCat("a micro-batch of ", t, " ids, ", batch.targets.size(),
                                                   " targets and sequence lengths adding up to ", summed));
  }
  if (model.parallel().first_stage()) PLM_RETURN_IF_ERROR(check_media(model, batch));
  return lora_row_keys(model, batch).status();
}

absl::StatusOr<std::unique_ptr<StagePass>> StagePass::create(const PlmModel& model, const TrainingBatch& batch,
                                                             Recompute recompute) {
  PLM_RETURN_IF_ERROR(check(model, batch));
  const int64_t t = static_cast<int64_t>(batch.ids.size());
  // One arena for the activations of this stage's pieces and the largest backward scratch.
  const PlmConfig& config = model.config();
  const LlamaDecoder& decoder = model.decoder();
  const DType dtype = model.dtype();
  const int64_t hidden = config.text.hidden_size, per_tile = config.tokens_per_tile();
  const VisionConfig& v = config.vision;
  const bool first = model.parallel().first_stage();
  const int64_t image_tiles = first ? count_of(batch.image_pixels) : 0;
  const int64_t video_frames = first ? count_of(batch.video_pixels) : 0;
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
  return std::unique_ptr<StagePass>(new StagePass(model, batch, recompute, bytes));
}

StagePass::StagePass(const PlmModel& model, const TrainingBatch& batch, Recompute recompute, size_t arena_bytes)
    : model_(model), batch_(batch), recompute_(recompute), arena_(arena_bytes, model.device()),
      attention_(batch.lengths) {
  const int64_t t = static_cast<int64_t>(batch.ids.size()), hidden = model.config().text.hidden_size;
  x_ = arena_.alloc({t, hidden}, model.dtype());
  dx_ = arena_.alloc({t, hidden}, model.dtype());
}

absl::Status StagePass::forward_media(Stream s) {
  const PlmConfig& config = model_.config();
  const VisionConfig& v = config.vision;
  const int64_t per_tile = config.tokens_per_tile(), hidden = config.text.hidden_size;
  const DType dtype = model_.dtype();
  const Tensor pixels_of[2] = {batch_.image_pixels, batch_.video_pixels};
  MediaEmbeddings media;
  for (int kind = 0; kind < 2; ++kind) {
    const int64_t n = count_of(pixels_of[kind]);
    if (n == 0) continue;
    MediaPass& p = media_[kind];
    p.input = model_.model_input(pixels_of[kind], s);
    p.tower_out = arena_.alloc({n, v.seq_len(), v.embed_dim}, dtype);
    p.vision = model_.vision().forward_train(arena_, p.tower_out, p.input, recompute_, s);
    p.rows = arena_.alloc({n, per_tile, hidden}, dtype);
    p.projector = model_.projector().forward_train(arena_, p.rows, p.tower_out, s);
    (kind == 0 ? media.image : media.video) = p.rows.reshape({n * per_tile, hidden});
    result_.vision_tiles += n;
  }
  return scatter_media(x_, batch_.ids, media, model_.media_tokens(), s);
}

absl::Status StagePass::forward(Stream s) {
  const Device device = model_.device();
  const LlamaDecoder& decoder = model_.decoder();
  const int64_t t = static_cast<int64_t>(batch_.ids.size());
  ids_ = to_device(host_i32(batch_.ids), device);
  TokenBatch sequences;
  for (size_t i = 0; i < batch_.lengths.size(); ++i) {
    sequences.chunks.push_back({static_cast<int>(i), 0, batch_.lengths[i]});
  }
  positions_ = LlamaDecoder::positions(sequences, device);
  if (model_.parallel().first_stage()) {
    decoder.embed(x_, ids_, s);
    PLM_RETURN_IF_ERROR(forward_media(s));
  }
  acts_ = decoder.allocate_activations(arena_, t, model_.dtype(), recompute_);
  PLM_ASSIGN_OR_RETURN(row_keys_, lora_row_keys(model_, batch_));
  decoder.forward_layers_train(x_, positions_, attention_, acts_, {.scratch = &arena_, .row_keys = row_keys_}, s);
  std::vector<int32_t> labelled_rows, labelled_targets;  // the rows that reach the head (HeadActivations)
  for (int64_t i = 0; i < t; ++i) {
    if (batch_.targets[i] == kIgnoreTarget) continue;
    labelled_rows.push_back(static_cast<int32_t>(i));
    labelled_targets.push_back(batch_.targets[i]);
  }
  result_.labelled_tokens = static_cast<int64_t>(labelled_rows.size());
  if (model_.parallel().last_stage()) {
    labelled_rows_ = to_device(host_i32(labelled_rows), device);
    targets_ = to_device(host_i32(labelled_targets), device);
    head_ = decoder.head_loss_forward(arena_, x_, labelled_rows_, targets_, s);
    const OwnedTensor losses = to_device(head_.loss, Device::cpu());
    for (int64_t i = 0; i < result_.labelled_tokens; ++i) result_.loss_sum += losses.data_as<float>()[i];
  }
  result_.arena_bytes = arena_.peak_bytes();
  return absl::OkStatus();
}

MediaEmbeddings StagePass::media_grad(const PlmWeights& grad, Stream s) {
  const int64_t per_tile = model_.config().tokens_per_tile(), hidden = model_.config().text.hidden_size;
  MediaEmbeddings dmedia;
  for (int kind = 0; kind < 2; ++kind) {
    if (!media_[kind].rows.defined() || !media_trainable(grad)) continue;
    const Tensor rows = arena_.alloc(media_[kind].rows.shape(), model_.dtype());
    (kind == 0 ? dmedia.image : dmedia.video) = rows.reshape({rows.size(0) * per_tile, hidden});
  }
  gather_media_grad(dmedia, dx_, batch_.ids, model_.media_tokens(), s);
  zero_media_rows(dx_, batch_.ids, model_.media_tokens(), s);
  return dmedia;
}

void StagePass::backward_media(const PlmWeights& grad, const MediaEmbeddings& dmedia, Stream s) {
  const bool vision_trainable = grad.vision.pos_embed.defined();
  for (int kind = 0; kind < 2; ++kind) {
    const MediaPass& p = media_[kind];
    if (!p.rows.defined() || !media_trainable(grad)) continue;
    const Tensor drows = (kind == 0 ? dmedia.image : dmedia.video).reshape(p.rows.shape());
    const Tensor dtower = vision_trainable ? arena_.alloc(p.tower_out.shape(), model_.dtype()) : Tensor();
    model_.projector().backward(grad.projector, p.projector, dtower, drows, arena_, s);
    if (vision_trainable) model_.vision().backward(grad.vision, p.vision, dtower, arena_, s);
  }
}

void StagePass::backward(const PlmWeights& grad, float loss_scale,
                         const std::function<void(const std::string&)>& final, Stream s) {
  const auto finished = [&](const std::string& prefix) {
    if (final) final(prefix);
  };
  const LlamaDecoder& decoder = model_.decoder();
  if (model_.parallel().last_stage()) {
    const Tensor dloss = arena_.alloc({result_.labelled_tokens}, DType::kF32);
    fill(dloss, loss_scale, s);
    decoder.head_loss_backward(grad.text, head_, dx_, dloss, targets_, arena_, s);
    finished(kLmHeadName);
    finished(text_name("norm."));
  }
  decoder.backward_layers(grad.text, acts_, dx_, positions_, attention_, arena_, row_keys_, s,
                          [&](int layer) { finished(text_layer_name(layer, "")); });
  if (model_.parallel().first_stage()) {
    const MediaEmbeddings dmedia = media_grad(grad, s);
    decoder.embed_backward(grad.text, ids_, dx_, s);
    finished(kEmbedTokensName);
    backward_media(grad, dmedia, s);
    finished(kProjectorPrefix);
    finished(kVisionPrefix);
  }
  result_.arena_bytes = arena_.peak_bytes();
}

}  // namespace plm::model
