#include "model/weights/hf_names.h"

#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace plm::model {
namespace {

// Llama's rotary inv_freq is a non-persistent buffer; some converters briefly stored it (spec §5).
bool is_ignorable_buffer(const std::string& name) { return absl::EndsWith(name, ".rotary_emb.inv_freq"); }

void add_vision(const VisionConfig& v, std::vector<ExpectedTensor>& out) {
  const int64_t d = v.embed_dim, m = v.mlp_hidden, p = v.patch_size;
  auto add = [&](const std::string& suffix, Shape shape) { out.push_back({vision_name(suffix), shape}); };
  auto add_block = [&](int i, const std::string& suffix, Shape shape) {
    out.push_back({vision_block_name(i, suffix), shape});
  };
  if (v.class_token) add("cls_token", {1, 1, d});
  add("pos_embed", {1, v.seq_len(), d});
  add("patch_embed.proj.weight", {d, 3, p, p});
  if (!v.pre_norm) add("patch_embed.proj.bias", {d});  // timm: conv bias = not use_pre_transformer_norm
  if (v.pre_norm) {
    add("norm_pre.weight", {d});
    add("norm_pre.bias", {d});
  }
  for (int i = 0; i < v.depth; ++i) {
    add_block(i, "norm1.weight", {d});
    add_block(i, "norm1.bias", {d});
    add_block(i, "attn.qkv.weight", {3 * d, d});
    add_block(i, "attn.qkv.bias", {3 * d});
    add_block(i, "attn.proj.weight", {d, d});
    add_block(i, "attn.proj.bias", {d});
    if (v.layer_scale()) {
      add_block(i, "gamma_1", {d});
      add_block(i, "gamma_2", {d});
    }
    add_block(i, "norm2.weight", {d});
    add_block(i, "norm2.bias", {d});
    add_block(i, "mlp.fc1.weight", {m, d});
    add_block(i, "mlp.fc1.bias", {m});
    add_block(i, "mlp.fc2.weight", {d, m});
    add_block(i, "mlp.fc2.bias", {d});
  }
  if (v.post_norm) {
    add("norm.weight", {d});
    add("norm.bias", {d});
  }
}

void add_projector(const PlmConfig& config, std::vector<ExpectedTensor>& out) {
  const int64_t d = config.vision.embed_dim, h = config.text.hidden_size;
  out.push_back({projector_name("linear_1.weight"), {h, d}});
  out.push_back({projector_name("linear_1.bias"), {h}});
  out.push_back({projector_name("linear_2.weight"), {h, h}});
  out.push_back({projector_name("linear_2.bias"), {h}});
}

void add_text(const PlmConfig& config, std::vector<ExpectedTensor>& out) {
  const TextConfig& t = config.text;
  const int64_t h = t.hidden_size, ffn = t.intermediate_size, vocab = t.vocab_size;
  const int64_t q_width = int64_t{t.num_heads} * t.head_dim, kv_width = int64_t{t.num_kv_heads} * t.head_dim;
  out.push_back({kEmbedTokensName, {vocab, h}});
  for (int l = 0; l < t.num_layers; ++l) {
    auto add = [&](const std::string& suffix, Shape shape) { out.push_back({text_layer_name(l, suffix), shape}); };
    add("input_layernorm.weight", {h});
    add("self_attn.q_proj.weight", {q_width, h});
    add("self_attn.k_proj.weight", {kv_width, h});
    add("self_attn.v_proj.weight", {kv_width, h});
    add("self_attn.o_proj.weight", {h, q_width});
    add("post_attention_layernorm.weight", {h});
    add("mlp.gate_proj.weight", {ffn, h});
    add("mlp.up_proj.weight", {ffn, h});
    add("mlp.down_proj.weight", {h, ffn});
  }
  out.push_back({text_name("norm.weight"), {h}});
  if (!config.tie_word_embeddings) out.push_back({kLmHeadName, {vocab, h}});
}

}  // namespace

std::string vision_name(const std::string& suffix) { return absl::StrCat(kVisionPrefix, suffix); }
std::string vision_block_name(int block, const std::string& suffix) {
  return absl::StrCat(kVisionPrefix, "blocks.", block, ".", suffix);
}
std::string projector_name(const std::string& suffix) { return absl::StrCat(kProjectorPrefix, suffix); }
std::string text_name(const std::string& suffix) { return absl::StrCat(kTextPrefix, suffix); }
std::string text_layer_name(int layer, const std::string& suffix) {
  return absl::StrCat(kTextPrefix, "layers.", layer, ".", suffix);
}

std::vector<ExpectedTensor> expected_tensors(const PlmConfig& config) {
  std::vector<ExpectedTensor> out;
  add_vision(config.vision, out);
  add_projector(config, out);
  add_text(config, out);
  return out;
}

absl::StatusOr<std::string> lm_head_tensor_name(const WeightStore& store, const PlmConfig& config) {
  if (store.contains(kLmHeadName)) return std::string(kLmHeadName);
  if (!config.tie_word_embeddings) {
    return absl::NotFoundError(absl::StrCat(store.source(), ": no ", kLmHeadName,
                                            " and the config does not tie it to the embedding"));
  }
  if (!store.contains(kEmbedTokensName)) {
    return absl::NotFoundError(absl::StrCat(store.source(), ": neither ", kLmHeadName, " nor the tied ",
                                            kEmbedTokensName));
  }
  return std::string(kEmbedTokensName);
}

absl::Status validate_checkpoint(const WeightStore& store, const PlmConfig& config) {
  std::vector<ExpectedTensor> expected = expected_tensors(config);
  if (config.tie_word_embeddings && store.contains(kLmHeadName)) {
    // Tied in the config but present: HF uses it (spec §1.1), so it must have the head's shape.
    expected.push_back({kLmHeadName, {config.text.vocab_size, config.text.hidden_size}});
  }
  std::vector<std::string> missing, wrong, unexpected;
  std::set<std::string> known;
  for (const ExpectedTensor& e : expected) {
    known.insert(e.name);
    const absl::StatusOr<TensorInfo> info = store.info(e.name);
    if (!info.ok()) {
      missing.push_back(e.name);
    } else if (!(info->shape == e.shape)) {
      wrong.push_back(absl::StrCat(e.name, " is ", info->shape.to_string(), ", expected ", e.shape.to_string()));
    } else if (!dtype_is_float(info->dtype)) {
      wrong.push_back(absl::StrCat(e.name, " has dtype ", std::string(dtype_name(info->dtype)), ", expected a float dtype"));
    }
  }
  for (const std::string& name : store.names()) {
    if (!known.contains(name) && !is_ignorable_buffer(name)) unexpected.push_back(name);
  }
  if (missing.empty() && wrong.empty() && unexpected.empty()) return absl::OkStatus();

  std::vector<std::string> parts;
  if (!missing.empty()) parts.push_back(absl::StrCat(missing.size(), " missing: ", absl::StrJoin(missing, ", ")));
  if (!wrong.empty()) parts.push_back(absl::StrCat(wrong.size(), " wrong: ", absl::StrJoin(wrong, "; ")));
  if (!unexpected.empty()) {
    parts.push_back(absl::StrCat(unexpected.size(), " unexpected: ", absl::StrJoin(unexpected, ", ")));
  }
  return absl::InvalidArgumentError(absl::StrCat(store.source(), ": checkpoint does not match the config (",
                                                 config.vision.architecture, ", ", config.text.num_layers,
                                                 " text layers): ", absl::StrJoin(parts, " | ")));
}

}  // namespace plm::model
