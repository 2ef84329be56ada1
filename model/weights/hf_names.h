// Hugging Face tensor names and shapes of PerceptionLMForConditionalGeneration for a PlmConfig
// (spec/plm_spec.md §5), and the check that a checkpoint holds exactly those tensors.
// Tying rule (spec §1.1): `lm_head.weight` is used whenever the file has it; otherwise a tied config
// aliases `model.language_model.embed_tokens.weight`, and an untied one is missing a tensor.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/tensor.h"
#include "model/config.h"
#include "model/weights/weight_store.h"

namespace plm::model {

inline constexpr const char* kVisionPrefix = "model.vision_tower.timm_model.";
inline constexpr const char* kProjectorPrefix = "model.multi_modal_projector.";
inline constexpr const char* kTextPrefix = "model.language_model.";
inline constexpr const char* kLmHeadName = "lm_head.weight";
inline constexpr const char* kEmbedTokensName = "model.language_model.embed_tokens.weight";

// Full names from the module-relative part, e.g. vision_block_name(3, "attn.qkv.weight") ==
// "model.vision_tower.timm_model.blocks.3.attn.qkv.weight".
std::string vision_name(const std::string& suffix);
std::string vision_block_name(int block, const std::string& suffix);
std::string projector_name(const std::string& suffix);  // "linear_1.weight" ...
std::string text_name(const std::string& suffix);
std::string text_layer_name(int layer, const std::string& suffix);

struct ExpectedTensor {
  std::string name;
  Shape shape;
};

// Every parameter HF's model has for `config`, with its shape; lm_head.weight only when untied.
// Their element counts add up to count_parameters(config).total.
std::vector<ExpectedTensor> expected_tensors(const PlmConfig& config);

// The tensor that holds the output projection: lm_head.weight if the store has it, else the tied
// embedding; an error for an untied config without lm_head.weight.
absl::StatusOr<std::string> lm_head_tensor_name(const WeightStore& store, const PlmConfig& config);

// OK iff the store holds every expected tensor with its shape and a float dtype, and nothing else (besides
// an lm_head.weight of the right shape next to a tied embedding, and non-persistent RoPE buffers that old
// converters saved). Otherwise one error listing every missing, unexpected and mis-shaped tensor by name.
absl::Status validate_checkpoint(const WeightStore& store, const PlmConfig& config);

}  // namespace plm::model
