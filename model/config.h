// PlmConfig: the model's shape, parsed from a Hugging Face PerceptionLM `config.json` (4.5x hub layout or
// 5.x save_pretrained layout, spec/plm_spec.md §1) and validated before anything is allocated.
// The vision tower is a timm Eva: arguments missing from `model_args` come from the timm architecture's
// defaults (spec §1.2), which is why an unknown architecture name is an error, not a guess.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/kernels/rope_tables.h"

namespace plm::model {

// PE vision tower (timm `Eva`). Every field is what timm builds, after architecture defaults + model_args.
struct VisionConfig {
  std::string architecture;            // timm name, e.g. "vit_pe_core_large_patch14_336"
  int embed_dim = 0;                   // D
  int depth = 0;                       // number of blocks
  int num_heads = 0;
  int mlp_hidden = 0;                  // M = int(D * mlp_ratio), evaluated in double like Python
  int patch_size = 0;
  int img_size = 0;                    // square; must equal the processor's tile_size
  bool class_token = false;            // a CLS token is prepended (1 prefix token)
  double rope_grid_offset = 0.0;       // 1.0 with a CLS token (L), 0.0 without (G)
  std::array<int, 2> ref_feat_shape{};  // timm RoPE reference grid (h, w)
  double rope_theta = 10000.0;         // timm rope_temperature
  std::optional<double> layer_scale_init;  // LayerScale (gamma_1/gamma_2) present iff set
  bool pre_norm = true;                // norm_pre LayerNorm; the patch conv has a bias iff this is false
  bool post_norm = false;              // final LayerNorm after the blocks
  double norm_eps = 1e-5;

  int head_dim() const { return embed_dim / num_heads; }
  int grid_size() const { return img_size / patch_size; }  // patches per side
  int num_patches() const { return grid_size() * grid_size(); }
  int num_prefix_tokens() const { return class_token ? 1 : 0; }
  int seq_len() const { return num_patches() + num_prefix_tokens(); }  // tokens out of the tower
  bool layer_scale() const { return layer_scale_init.has_value(); }
};

// Llama decoder (HF LlamaConfig).
struct TextConfig {
  int hidden_size = 0;
  int num_layers = 0;
  int num_heads = 0;
  int num_kv_heads = 0;            // LlamaConfig default: num_heads
  int head_dim = 0;                // explicit, or hidden_size / num_heads
  int intermediate_size = 0;
  int vocab_size = 0;
  double rms_norm_eps = 1e-6;      // LlamaConfig default (PLM files say 1e-5)
  double rope_theta = 10000.0;     // LlamaConfig default (PLM files say 500000)
  std::optional<Llama3RopeScaling> rope_scaling;  // HF type "llama3" (core/kernels/rope_tables.h); none: plain RoPE
  int64_t max_position_embeddings = 2048;
  int32_t bos_token_id = 1;
  std::vector<int32_t> eos_token_ids = {2};
  bool tie_word_embeddings = false;  // text_config's own value; PlmConfig holds the effective one
};

struct PlmConfig {
  VisionConfig vision;
  TextConfig text;
  bool vision_use_cls_token = true;    // drop token 0 of the tower output before the projector
  int projector_pooling_ratio = 1;     // <= 1: no pooling
  int32_t image_token_id = 128002;
  int32_t video_token_id = 128003;
  bool tie_word_embeddings = false;    // effective: top level (5.x), else text_config's (4.5x)

  // LLM tokens per image tile or video frame after pooling (spec §2.5: o = floor(g / k) per side on the
  // g x g patch grid, or g when k <= 1).
  int tokens_per_tile() const;
};

// What generation_config.json says (spec §1.5). Absent keys keep these defaults (HF GenerationConfig).
struct GenerationConfig {
  std::optional<int32_t> bos_token_id;
  std::vector<int32_t> eos_token_ids;
  std::optional<int32_t> pad_token_id;
  bool do_sample = false;
  std::optional<double> temperature;
  std::optional<double> top_p;
  std::optional<int> top_k;
  std::optional<int> max_new_tokens;
  std::optional<int> max_length;
};

// Parses and validates `config.json`; `path` is the file or the model directory holding it.
absl::StatusOr<PlmConfig> load_plm_config(const std::string& path);
// Same, from JSON text; `source` names it in error messages.
absl::StatusOr<PlmConfig> parse_plm_config(const std::string& json_text, const std::string& source);

// Parses `generation_config.json` in the model directory (or the file itself); nullopt when the
// directory has none.
absl::StatusOr<std::optional<GenerationConfig>> load_generation_config(const std::string& path);
absl::StatusOr<GenerationConfig> parse_generation_config(const std::string& json_text,
                                                         const std::string& source);

// Parameter counts as HF instantiates the model (spec §1.6); a tied lm_head is counted once (in text).
struct ParameterCounts {
  int64_t vision = 0;
  int64_t projector = 0;
  int64_t text = 0;
  int64_t total = 0;
};
ParameterCounts count_parameters(const PlmConfig& config);

}  // namespace plm::model
