// Parsing follows HF: missing text keys take LlamaConfig's defaults, missing vision keys take the timm
// architecture's defaults (spec/plm_spec.md §1.2, §1.4). The structural sizes (hidden_size, layers, heads,
// intermediate_size, vocab_size, model_args.embed_dim) are required: HF's defaults for those describe
// Llama-2-7B, and a PLM config without them is a broken file, not a request for Llama-2.
#include "model/config.h"

#include <filesystem>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/status_macros.h"
#include "model/json_fields.h"

namespace plm::model {
namespace {

using IntPair = std::array<int, 2>;  // (h, w); an alias so it fits in a macro argument

// What a timm Eva architecture function sets before model_args override it (spec §1.2 table).
struct EvaArchitecture {
  const char* name;
  int patch_size;
  int embed_dim;
  int depth;
  int num_heads;
  double mlp_ratio;
  bool class_token;
  double rope_grid_offset;
  int ref_feat_size;
  int img_size;
};

constexpr EvaArchitecture kEvaArchitectures[] = {
    {"vit_pe_core_large_patch14_336", 14, 1024, 24, 16, 4.0, true, 1.0, 24, 336},
    {"vit_pe_core_gigantic_patch14_448", 14, 1536, 50, 16, 8960.0 / 1536.0, false, 0.0, 32, 448},
};

// model_args keys that only matter for training regularisation or for heads PLM never builds.
const std::set<std::string> kIgnoredModelArgs = {"num_classes",    "drop_rate",      "pos_drop_rate",
                                                 "patch_drop_rate", "proj_drop_rate", "attn_drop_rate",
                                                 "drop_path_rate"};
const std::set<std::string> kSupportedModelArgs = {
    "embed_dim",  "depth",         "num_heads",  "mlp_ratio",  "patch_size",       "img_size",
    "class_token", "rope_grid_offset", "ref_feat_shape", "init_values", "use_pre_transformer_norm",
    "use_post_transformer_norm", "global_pool", "rope_temperature"};

absl::StatusOr<const EvaArchitecture*> find_architecture(const JsonFields& fields, std::string name) {
  name = name.substr(0, name.find('.'));  // timm accepts "arch.tag"; the tag names weights only
  std::vector<std::string> supported;
  for (const EvaArchitecture& arch : kEvaArchitectures) {
    if (name == arch.name) return &arch;
    supported.push_back(arch.name);
  }
  return fields.error("architecture", absl::StrCat("'", name, "' is not supported (supported: ",
                                                   absl::StrJoin(supported, ", "), ")"));
}

// Bounds no real model comes near (PLM-8B: width 4096, 36 layers, 1024 patches a tile) that keep every size
// product, the parameter counts and the buffers sized from them, inside int64 arithmetic: a config that passes
// cannot overflow what is computed from it.
constexpr int64_t kMaxWidth = int64_t{1} << 20;           // any width, count of heads or vocabulary size
constexpr int64_t kMaxLayers = int64_t{1} << 16;          // depth, num_hidden_layers
constexpr int64_t kMaxPatchesPerTile = int64_t{1} << 20;  // (img_size / patch_size)^2

// An int field in [1, max].
absl::StatusOr<int> positive_int(const JsonFields& fields, const std::string& key, int64_t value,
                                 int64_t max = kMaxWidth) {
  if (value <= 0 || value > max) {
    return fields.error(key, absl::StrCat("must be a positive integer up to ", max, ", got ", value));
  }
  return static_cast<int>(value);
}

absl::StatusOr<int> optional_positive_int(const JsonFields& fields, const std::string& key, int default_value,
                                          int64_t max = kMaxWidth) {
  PLM_ASSIGN_OR_RETURN(const std::optional<int64_t> value, fields.optional_int(key));
  if (!value) return default_value;
  return positive_int(fields, key, *value, max);
}

absl::StatusOr<int> required_positive_int(const JsonFields& fields, const std::string& key, int64_t max = kMaxWidth) {
  PLM_ASSIGN_OR_RETURN(const int64_t value, fields.required_int(key));
  return positive_int(fields, key, value, max);
}

// timm's to_2tuple: an int n means (n, n).
absl::StatusOr<std::optional<IntPair>> optional_pair(const JsonFields& fields,
                                                                const std::string& key) {
  PLM_ASSIGN_OR_RETURN(const std::optional<std::vector<int64_t>> list, fields.optional_int_list(key));
  if (!list) return std::optional<IntPair>();
  if (list->empty() || list->size() > 2) {
    return fields.error(key, absl::StrCat("must be an integer or a pair, got ", list->size(), " values"));
  }
  PLM_ASSIGN_OR_RETURN(const int first, positive_int(fields, key, list->front()));
  PLM_ASSIGN_OR_RETURN(const int second, positive_int(fields, key, list->back()));
  return std::optional(IntPair{first, second});
}

absl::StatusOr<VisionConfig> parse_vision_config(const JsonFields& vision_fields) {
  PLM_ASSIGN_OR_RETURN(const std::optional<std::string> model_type, vision_fields.optional_string("model_type"));
  if (model_type && *model_type != "timm_wrapper") {
    return vision_fields.error("model_type", "'" + *model_type + "' is not supported (supported: timm_wrapper)");
  }
  PLM_ASSIGN_OR_RETURN(const std::optional<std::string> architecture_name,
                       vision_fields.optional_string("architecture"));
  if (!architecture_name) return vision_fields.error("architecture", "is missing (required)");
  PLM_ASSIGN_OR_RETURN(const EvaArchitecture* arch, find_architecture(vision_fields, *architecture_name));
  PLM_ASSIGN_OR_RETURN(const std::optional<JsonFields> model_args_or, vision_fields.optional_object("model_args"));
  // HF's projector reads model_args["embed_dim"] directly, so a vision config without it cannot load.
  if (!model_args_or) return vision_fields.error("model_args", "is missing (required: it holds embed_dim)");
  const JsonFields& args = *model_args_or;

  for (const std::string& key : args.keys()) {
    if (!kSupportedModelArgs.contains(key) && !kIgnoredModelArgs.contains(key)) {
      return args.error(key, "is not a supported timm Eva argument (supported: " +
                                 absl::StrJoin(kSupportedModelArgs, ", ") + ")");
    }
  }

  VisionConfig v;
  v.architecture = arch->name;
  PLM_ASSIGN_OR_RETURN(v.embed_dim, required_positive_int(args, "embed_dim"));
  PLM_ASSIGN_OR_RETURN(v.depth, optional_positive_int(args, "depth", arch->depth, kMaxLayers));
  PLM_ASSIGN_OR_RETURN(v.num_heads, optional_positive_int(args, "num_heads", arch->num_heads));
  PLM_ASSIGN_OR_RETURN(v.patch_size, optional_positive_int(args, "patch_size", arch->patch_size));

  PLM_ASSIGN_OR_RETURN(const std::optional<double> mlp_ratio, args.optional_double("mlp_ratio"));
  // timm: hidden_features = int(dim * mlp_ratio), double arithmetic truncated toward zero.
  const double mlp_hidden = static_cast<double>(v.embed_dim) * mlp_ratio.value_or(arch->mlp_ratio);
  if (!(mlp_hidden >= 1.0 && mlp_hidden <= kMaxWidth)) {
    return args.error("mlp_ratio", absl::StrCat("gives an MLP width of ", mlp_hidden, " for embed_dim ",
                                                v.embed_dim));
  }
  v.mlp_hidden = static_cast<int>(mlp_hidden);

  PLM_ASSIGN_OR_RETURN(const std::optional<IntPair> img_size, optional_pair(args, "img_size"));
  if (img_size && (*img_size)[0] != (*img_size)[1]) {
    return args.error("img_size", absl::StrCat("must be square, got (", (*img_size)[0], ", ",
                                               (*img_size)[1], ")"));
  }
  v.img_size = img_size ? (*img_size)[0] : arch->img_size;

  PLM_ASSIGN_OR_RETURN(const std::optional<IntPair> ref_feat_shape,
                       optional_pair(args, "ref_feat_shape"));
  v.ref_feat_shape = ref_feat_shape.value_or(IntPair{arch->ref_feat_size, arch->ref_feat_size});

  PLM_ASSIGN_OR_RETURN(const std::optional<bool> class_token, args.optional_bool("class_token"));
  v.class_token = class_token.value_or(arch->class_token);
  PLM_ASSIGN_OR_RETURN(const std::optional<double> grid_offset, args.optional_double("rope_grid_offset"));
  v.rope_grid_offset = grid_offset.value_or(arch->rope_grid_offset);
  PLM_ASSIGN_OR_RETURN(const std::optional<double> rope_theta, args.optional_double("rope_temperature"));
  v.rope_theta = rope_theta.value_or(10000.0);
  PLM_ASSIGN_OR_RETURN(v.layer_scale_init, args.optional_double("init_values"));
  PLM_ASSIGN_OR_RETURN(const std::optional<bool> pre_norm, args.optional_bool("use_pre_transformer_norm"));
  v.pre_norm = pre_norm.value_or(true);

  // The architectures default to global_pool 'map' (an attention-pool head PLM checkpoints do not have).
  PLM_ASSIGN_OR_RETURN(const std::optional<std::string> global_pool, args.optional_string("global_pool"));
  if (!global_pool || !global_pool->empty()) {
    return args.error("global_pool", absl::StrCat("must be \"\" (no pooling head), got ",
                                                  global_pool ? "'" + *global_pool + "'" : "the default 'map'"));
  }
  // Unset means a final LayerNorm with global_pool "" (timm only moves it to fc_norm for 'avg').
  PLM_ASSIGN_OR_RETURN(const std::optional<bool> post_norm, args.optional_bool("use_post_transformer_norm"));
  v.post_norm = post_norm.value_or(true);
  return v;
}

absl::Status validate_vision(const VisionConfig& v, const JsonFields& args) {
  if (v.embed_dim % v.num_heads != 0) {
    return args.error("embed_dim", absl::StrCat("(", v.embed_dim, ") is not divisible by num_heads (",
                                                v.num_heads, "): ", v.embed_dim, " % ", v.num_heads, " = ",
                                                v.embed_dim % v.num_heads));
  }
  if (v.head_dim() % 4 != 0) {
    return args.error("embed_dim", absl::StrCat("/ num_heads = head_dim ", v.head_dim(),
                                                " is not a multiple of 4 (2-D RoPE rotates x and y pairs)"));
  }
  if (v.img_size % v.patch_size != 0) {
    return args.error("img_size", absl::StrCat("(", v.img_size, ") is not divisible by patch_size (",
                                               v.patch_size, "): ", v.img_size, " % ", v.patch_size, " = ",
                                               v.img_size % v.patch_size));
  }
  const int64_t grid = v.img_size / v.patch_size;
  if (grid * grid > kMaxPatchesPerTile) {
    return args.error("img_size", absl::StrCat("/ patch_size = ", grid, " gives ", grid * grid,
                                               " patches a tile, more than ", kMaxPatchesPerTile));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<Llama3RopeScaling>> parse_rope_type(const JsonFields& rope) {
  PLM_ASSIGN_OR_RETURN(std::optional<std::string> type, rope.optional_string("rope_type"));
  if (!type) {
    PLM_ASSIGN_OR_RETURN(type, rope.optional_string("type"));  // the older spelling
  }
  const std::string rope_type = type.value_or("default");
  if (rope_type == "default") return std::optional<Llama3RopeScaling>();
  if (rope_type != "llama3") {
    return rope.error("rope_type", "'" + rope_type + "' is not supported (supported: default, llama3)");
  }
  Llama3RopeScaling s{};
  for (auto [key, field] : {std::pair{"factor", &s.factor}, std::pair{"low_freq_factor", &s.low_freq_factor},
                            std::pair{"high_freq_factor", &s.high_freq_factor}}) {
    PLM_ASSIGN_OR_RETURN(const std::optional<double> value, rope.optional_double(key));
    if (!value) return rope.error(key, "is missing (required for llama3 RoPE)");
    *field = *value;
  }
  PLM_ASSIGN_OR_RETURN(s.original_max_position_embeddings, rope.required_int("original_max_position_embeddings"));
  if (!(s.factor > 0.0) || s.original_max_position_embeddings <= 0) {
    return rope.error("factor", absl::StrCat("and original_max_position_embeddings must be positive, got ",
                                             s.factor, " and ", s.original_max_position_embeddings));
  }
  if (!(s.high_freq_factor > s.low_freq_factor)) {
    return rope.error("high_freq_factor", absl::StrCat("(", s.high_freq_factor, ") must exceed low_freq_factor (",
                                                       s.low_freq_factor, "): the blend divides by their difference"));
  }
  return std::optional(s);
}

// 5.x: one `rope_parameters` object; 4.5x: `rope_theta` + `rope_scaling` (spec §1.5).
absl::Status parse_text_rope(const JsonFields& t, TextConfig& text) {
  PLM_ASSIGN_OR_RETURN(const std::optional<double> top_theta, t.optional_double("rope_theta"));
  PLM_ASSIGN_OR_RETURN(const std::optional<JsonFields> parameters, t.optional_object("rope_parameters"));
  PLM_ASSIGN_OR_RETURN(const std::optional<JsonFields> scaling, t.optional_object("rope_scaling"));
  std::optional<double> theta = top_theta;
  if (parameters) {
    PLM_ASSIGN_OR_RETURN(const std::optional<double> inner_theta, parameters->optional_double("rope_theta"));
    if (inner_theta) theta = inner_theta;
    PLM_ASSIGN_OR_RETURN(text.rope_scaling, parse_rope_type(*parameters));
  } else if (scaling) {
    PLM_ASSIGN_OR_RETURN(text.rope_scaling, parse_rope_type(*scaling));
  }
  text.rope_theta = theta.value_or(10000.0);
  if (!(text.rope_theta > 0.0)) return t.error("rope_theta", absl::StrCat("must be positive, got ", text.rope_theta));
  return absl::OkStatus();
}

absl::StatusOr<int32_t> token_id(const JsonFields& fields, const std::string& key, int64_t id, int vocab_size) {
  if (id < 0 || id >= vocab_size) {
    return fields.error(key, absl::StrCat("(", id, ") is outside the vocabulary [0, ", vocab_size, ")"));
  }
  return static_cast<int32_t>(id);
}

absl::StatusOr<TextConfig> parse_text_config(const JsonFields& t) {
  PLM_ASSIGN_OR_RETURN(const std::optional<std::string> model_type, t.optional_string("model_type"));
  if (model_type && *model_type != "llama") {
    return t.error("model_type", "'" + *model_type + "' is not supported (supported: llama)");
  }
  PLM_ASSIGN_OR_RETURN(const std::optional<std::string> act, t.optional_string("hidden_act"));
  if (act && *act != "silu") return t.error("hidden_act", "'" + *act + "' is not supported (supported: silu)");
  for (const char* key : {"attention_bias", "mlp_bias"}) {
    PLM_ASSIGN_OR_RETURN(const std::optional<bool> bias, t.optional_bool(key));
    if (bias.value_or(false)) return t.error(key, "true is not supported (Llama/PLM projections have no bias)");
  }

  TextConfig text;
  PLM_ASSIGN_OR_RETURN(text.hidden_size, required_positive_int(t, "hidden_size"));
  PLM_ASSIGN_OR_RETURN(text.num_layers, required_positive_int(t, "num_hidden_layers", kMaxLayers));
  PLM_ASSIGN_OR_RETURN(text.num_heads, required_positive_int(t, "num_attention_heads"));
  PLM_ASSIGN_OR_RETURN(text.intermediate_size, required_positive_int(t, "intermediate_size"));
  PLM_ASSIGN_OR_RETURN(text.vocab_size, required_positive_int(t, "vocab_size"));
  PLM_ASSIGN_OR_RETURN(text.num_kv_heads, optional_positive_int(t, "num_key_value_heads", text.num_heads));
  if (text.num_heads % text.num_kv_heads != 0) {
    return t.error("num_attention_heads",
                   absl::StrCat("(", text.num_heads, ") is not divisible by num_key_value_heads (", text.num_kv_heads,
                                "): ", text.num_heads, " % ", text.num_kv_heads, " = ",
                                text.num_heads % text.num_kv_heads));
  }
  if (t.has("head_dim")) {
    PLM_ASSIGN_OR_RETURN(text.head_dim, required_positive_int(t, "head_dim"));
  } else if (text.hidden_size % text.num_heads != 0) {
    return t.error("hidden_size", absl::StrCat("(", text.hidden_size, ") is not divisible by num_attention_heads (",
                                               text.num_heads, ") and no head_dim is given: ", text.hidden_size,
                                               " % ", text.num_heads, " = ", text.hidden_size % text.num_heads));
  } else {
    text.head_dim = text.hidden_size / text.num_heads;
  }
  if (text.head_dim % 2 != 0) {
    return t.error("head_dim", absl::StrCat("(", text.head_dim, ") must be even: RoPE rotates pairs"));
  }
  if (int64_t{text.num_heads} * text.head_dim > kMaxWidth) {
    return t.error("num_attention_heads", absl::StrCat("(", text.num_heads, ") x head_dim (", text.head_dim, ") = ",
                                                       int64_t{text.num_heads} * text.head_dim,
                                                       " is wider than ", kMaxWidth));
  }

  PLM_ASSIGN_OR_RETURN(const std::optional<double> eps, t.optional_double("rms_norm_eps"));
  text.rms_norm_eps = eps.value_or(1e-6);
  if (!(text.rms_norm_eps > 0.0)) return t.error("rms_norm_eps", absl::StrCat("must be positive, got ", text.rms_norm_eps));
  PLM_RETURN_IF_ERROR(parse_text_rope(t, text));
  PLM_ASSIGN_OR_RETURN(const std::optional<int64_t> max_positions, t.optional_int("max_position_embeddings"));
  text.max_position_embeddings = max_positions.value_or(2048);
  if (text.max_position_embeddings <= 0) {
    return t.error("max_position_embeddings", absl::StrCat("must be positive, got ", text.max_position_embeddings));
  }

  PLM_ASSIGN_OR_RETURN(const std::optional<int64_t> bos, t.optional_int("bos_token_id"));
  PLM_ASSIGN_OR_RETURN(text.bos_token_id, token_id(t, "bos_token_id", bos.value_or(1), text.vocab_size));
  PLM_ASSIGN_OR_RETURN(const std::optional<std::vector<int64_t>> eos, t.optional_int_list("eos_token_id"));
  text.eos_token_ids.clear();
  for (const int64_t id : eos.value_or(std::vector<int64_t>{2})) {
    PLM_ASSIGN_OR_RETURN(const int32_t checked, token_id(t, "eos_token_id", id, text.vocab_size));
    text.eos_token_ids.push_back(checked);
  }
  PLM_ASSIGN_OR_RETURN(const std::optional<bool> tie, t.optional_bool("tie_word_embeddings"));
  text.tie_word_embeddings = tie.value_or(false);
  return text;
}

absl::StatusOr<PlmConfig> parse_top_level(const JsonFields& top) {
  PLM_ASSIGN_OR_RETURN(const std::optional<std::string> model_type, top.optional_string("model_type"));
  if (model_type && *model_type != "perception_lm") {
    return top.error("model_type", "'" + *model_type + "' is not supported (supported: perception_lm)");
  }
  PLM_ASSIGN_OR_RETURN(const std::optional<JsonFields> vision_fields, top.optional_object("vision_config"));
  if (!vision_fields) return top.error("vision_config", "is missing (required)");
  PLM_ASSIGN_OR_RETURN(const std::optional<JsonFields> text_fields, top.optional_object("text_config"));
  if (!text_fields) return top.error("text_config", "is missing (required)");

  PlmConfig config;
  PLM_ASSIGN_OR_RETURN(config.vision, parse_vision_config(*vision_fields));
  PLM_ASSIGN_OR_RETURN(const std::optional<JsonFields> model_args, vision_fields->optional_object("model_args"));
  PLM_RETURN_IF_ERROR(validate_vision(config.vision, *model_args));
  PLM_ASSIGN_OR_RETURN(config.text, parse_text_config(*text_fields));

  PLM_ASSIGN_OR_RETURN(const std::optional<bool> use_cls, top.optional_bool("vision_use_cls_token"));
  config.vision_use_cls_token = use_cls.value_or(true);
  // Dropping token 0 must leave exactly the square patch grid for the projector's pooling (spec §2.4-2.5).
  if (config.vision_use_cls_token != config.vision.class_token) {
    return top.error("vision_use_cls_token",
                     absl::StrCat("is ", config.vision_use_cls_token ? "true" : "false", " but the vision tower (",
                                  config.vision.architecture, ") ", config.vision.class_token ? "has" : "has no",
                                  " class token: the projector would get ",
                                  config.vision.seq_len() - (config.vision_use_cls_token ? 1 : 0),
                                  " tokens, not the ", config.vision.num_patches(), " of the patch grid"));
  }
  PLM_ASSIGN_OR_RETURN(const std::optional<int64_t> pooling, top.optional_int("projector_pooling_ratio"));
  const int64_t ratio = pooling.value_or(1);
  if (ratio < 0 || ratio > config.vision.grid_size()) {
    return top.error("projector_pooling_ratio", absl::StrCat("(", ratio, ") must be in [0, ", config.vision.grid_size(),
                                                             "], the vision grid size"));
  }
  config.projector_pooling_ratio = static_cast<int>(ratio);

  const int vocab = config.text.vocab_size;
  PLM_ASSIGN_OR_RETURN(const std::optional<int64_t> image_id, top.optional_int("image_token_id"));
  PLM_ASSIGN_OR_RETURN(config.image_token_id, token_id(top, "image_token_id", image_id.value_or(128002), vocab));
  PLM_ASSIGN_OR_RETURN(const std::optional<int64_t> video_id, top.optional_int("video_token_id"));
  PLM_ASSIGN_OR_RETURN(config.video_token_id, token_id(top, "video_token_id", video_id.value_or(128003), vocab));
  PLM_ASSIGN_OR_RETURN(const std::optional<bool> tie, top.optional_bool("tie_word_embeddings"));
  config.tie_word_embeddings = tie.value_or(config.text.tie_word_embeddings);  // spec §1.1
  return config;
}

// `path` is a file, or a directory holding `file_name`.
std::string file_in(const std::string& path, const char* file_name) {
  const std::filesystem::path p(path);
  std::error_code error;  // an unreadable path is reported when the file is opened
  return std::filesystem::is_directory(p, error) ? (p / file_name).string() : path;
}

}  // namespace

int PlmConfig::tokens_per_tile() const {
  const int grid = vision.grid_size();
  const int side = projector_pooling_ratio <= 1 ? grid : grid / projector_pooling_ratio;
  return side * side;
}

absl::StatusOr<PlmConfig> parse_plm_config(const std::string& json_text, const std::string& source) {
  PLM_ASSIGN_OR_RETURN(const nlohmann::json json, parse_json(json_text, source));
  PLM_ASSIGN_OR_RETURN(const JsonFields top, JsonFields::of(json, source, ""));
  return parse_top_level(top);
}

absl::StatusOr<PlmConfig> load_plm_config(const std::string& path) {
  const std::string file = file_in(path, "config.json");
  PLM_ASSIGN_OR_RETURN(const std::string text, read_text_file(file));
  return parse_plm_config(text, file);
}

absl::StatusOr<GenerationConfig> parse_generation_config(const std::string& json_text, const std::string& source) {
  PLM_ASSIGN_OR_RETURN(const nlohmann::json json, parse_json(json_text, source));
  PLM_ASSIGN_OR_RETURN(const JsonFields g, JsonFields::of(json, source, ""));
  GenerationConfig config;
  auto narrow = [&](const char* key, std::optional<int64_t> value) -> absl::StatusOr<std::optional<int32_t>> {
    if (!value) return std::optional<int32_t>();
    if (*value < 0 || *value > INT32_MAX) return g.error(key, absl::StrCat("must be a non-negative id, got ", *value));
    return std::optional<int32_t>(static_cast<int32_t>(*value));
  };
  PLM_ASSIGN_OR_RETURN(const std::optional<int64_t> bos, g.optional_int("bos_token_id"));
  PLM_ASSIGN_OR_RETURN(config.bos_token_id, narrow("bos_token_id", bos));
  PLM_ASSIGN_OR_RETURN(const std::optional<int64_t> pad, g.optional_int("pad_token_id"));
  PLM_ASSIGN_OR_RETURN(config.pad_token_id, narrow("pad_token_id", pad));
  PLM_ASSIGN_OR_RETURN(const std::optional<std::vector<int64_t>> eos, g.optional_int_list("eos_token_id"));
  for (const int64_t id : eos.value_or(std::vector<int64_t>{})) {
    PLM_ASSIGN_OR_RETURN(const std::optional<int32_t> checked, narrow("eos_token_id", id));
    config.eos_token_ids.push_back(*checked);
  }
  PLM_ASSIGN_OR_RETURN(const std::optional<bool> do_sample, g.optional_bool("do_sample"));
  config.do_sample = do_sample.value_or(false);
  PLM_ASSIGN_OR_RETURN(config.temperature, g.optional_double("temperature"));
  PLM_ASSIGN_OR_RETURN(config.top_p, g.optional_double("top_p"));
  for (auto [key, field] : {std::pair{"top_k", &config.top_k}, std::pair{"max_new_tokens", &config.max_new_tokens},
                            std::pair{"max_length", &config.max_length}}) {
    PLM_ASSIGN_OR_RETURN(const std::optional<int64_t> value, g.optional_int(key));
    if (value && (*value < 0 || *value > INT32_MAX)) {
      return g.error(key, absl::StrCat("must be a non-negative integer, got ", *value));
    }
    if (value) *field = static_cast<int>(*value);
  }
  return config;
}

absl::StatusOr<std::optional<GenerationConfig>> load_generation_config(const std::string& path) {
  const std::string file = file_in(path, "generation_config.json");
  std::error_code error;
  if (!std::filesystem::exists(file, error)) return std::optional<GenerationConfig>();
  PLM_ASSIGN_OR_RETURN(const std::string text, read_text_file(file));
  PLM_ASSIGN_OR_RETURN(GenerationConfig config, parse_generation_config(text, file));
  return std::optional(std::move(config));
}

ParameterCounts count_parameters(const PlmConfig& config) {
  const VisionConfig& v = config.vision;
  const int64_t d = v.embed_dim;
  const int64_t m = v.mlp_hidden;
  const int64_t layer_norm = 2 * d;
  const int64_t block = layer_norm                             // norm1
                        + 3 * d * d + 3 * d                    // qkv (fused, with bias)
                        + d * d + d                            // proj
                        + (v.layer_scale() ? 2 * d : 0)        // gamma_1, gamma_2
                        + layer_norm                           // norm2
                        + m * d + m + d * m + d;               // fc1, fc2
  ParameterCounts counts;
  counts.vision = d * 3 * v.patch_size * v.patch_size + (v.pre_norm ? 0 : d)  // patch conv (+ bias)
                  + (v.class_token ? d : 0)                                   // cls_token
                  + static_cast<int64_t>(v.seq_len()) * d                     // pos_embed
                  + (v.pre_norm ? layer_norm : 0) + v.depth * block + (v.post_norm ? layer_norm : 0);

  const int64_t h = config.text.hidden_size;
  counts.projector = d * h + h + h * h + h;

  const TextConfig& t = config.text;
  const int64_t q_width = static_cast<int64_t>(t.num_heads) * t.head_dim;
  const int64_t kv_width = static_cast<int64_t>(t.num_kv_heads) * t.head_dim;
  const int64_t layer = 2 * h                                   // input / post-attention RMSNorm
                        + h * q_width + 2 * h * kv_width         // q, k, v
                        + q_width * h                            // o
                        + 3 * h * t.intermediate_size;           // gate, up, down
  const int64_t embedding = static_cast<int64_t>(t.vocab_size) * h;
  counts.text = embedding + t.num_layers * layer + h + (config.tie_word_embeddings ? 0 : embedding);
  counts.total = counts.vision + counts.projector + counts.text;
  return counts;
}

}  // namespace plm::model
