#include "trainer/peft_adapter.h"

#include <algorithm>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "core/kernels/ops.h"
#include "core/status_macros.h"
#include "model/json_fields.h"
#include "model/weights/hf_names.h"
#include "model/weights/safetensors.h"
#include "model/weights/weight_store.h"
#include "core/durable_file.h"

namespace plm::trainer {

namespace fs = std::filesystem;

static_assert(std::ranges::equal(kLoraTargetNames, model::kLoraTargets),
              "the config's LoRA targets (train_config.h) are the model's (model/lora.h)");

namespace {

// A contiguous f32 CPU copy of a tensor of any float dtype and device.
OwnedTensor host_f32(Tensor t) {
  OwnedTensor host = to_device(t, Device::cpu());
  if (host.dtype() == DType::kF32) return host;
  OwnedTensor widened(host.shape(), DType::kF32);
  cast(widened, host);
  return widened;
}

// The fields peft writes that change what the adapter computes; each must hold its neutral value.
absl::Status check_unsupported_fields(const model::JsonFields& fields) {
  PLM_ASSIGN_OR_RETURN(const std::optional<bool> rslora, fields.optional_bool("use_rslora"));
  if (rslora.value_or(false)) return fields.error("use_rslora", "is true (scaling alpha / sqrt(r) is not supported)");
  PLM_ASSIGN_OR_RETURN(const std::optional<std::string> bias, fields.optional_string("bias"));
  if (bias.value_or("none") != "none") {
    return fields.error("bias", "must be \"none\" (adapter biases are not supported)");
  }
  PLM_ASSIGN_OR_RETURN(const std::optional<bool> fan_in_fan_out, fields.optional_bool("fan_in_fan_out"));
  if (fan_in_fan_out.value_or(false)) {
    return fields.error("fan_in_fan_out", "is true (Conv1D layers are not supported)");
  }
  for (const char* key : {"modules_to_save", "layers_to_transform", "target_parameters"}) {
    const nlohmann::json* value = fields.find(key);
    if (value != nullptr && !(value->is_array() && value->empty())) return fields.error(key, "is set (not supported)");
  }
  for (const char* key : {"rank_pattern", "alpha_pattern"}) {
    const nlohmann::json* value = fields.find(key);
    if (value != nullptr && !(value->is_object() && value->empty())) return fields.error(key, "is set (not supported)");
  }
  return absl::OkStatus();
}

}  // namespace

model::LoraSpec lora_spec(const TrainConfig::Lora& lora, uint64_t seed) {
  return {.rank = lora.rank, .alpha = lora.alpha, .dropout = lora.dropout, .targets = lora.targets,
          .dora = lora.dora, .init_seed = seed};
}

absl::StatusOr<model::LoraSpec> peft_config_spec(const nlohmann::json& json, const std::string& source) {
  PLM_ASSIGN_OR_RETURN(const model::JsonFields fields, model::JsonFields::of(json, source, ""));
  PLM_ASSIGN_OR_RETURN(const std::optional<std::string> type, fields.optional_string("peft_type"));
  if (type != "LORA") return fields.error("peft_type", "must be \"LORA\"");
  PLM_RETURN_IF_ERROR(check_unsupported_fields(fields));
  model::LoraSpec spec;
  PLM_ASSIGN_OR_RETURN(const int64_t rank, fields.required_int("r"));
  spec.rank = static_cast<int>(rank);
  PLM_ASSIGN_OR_RETURN(const std::optional<double> alpha, fields.optional_double("lora_alpha"));
  spec.alpha = alpha.value_or(8.0);  // peft's default
  PLM_ASSIGN_OR_RETURN(const std::optional<double> dropout, fields.optional_double("lora_dropout"));
  spec.dropout = dropout.value_or(0.0);
  PLM_ASSIGN_OR_RETURN(const std::optional<bool> dora, fields.optional_bool("use_dora"));
  spec.dora = dora.value_or(false);
  const nlohmann::json* targets = fields.find("target_modules");
  if (targets == nullptr || !targets->is_array()) {
    return fields.error("target_modules", "must be a list of module names (a regular expression is not supported)");
  }
  for (const nlohmann::json& t : *targets) {
    if (!t.is_string()) return fields.error("target_modules", "must hold strings");
    spec.targets.push_back(t.get<std::string>());
  }
  if (const absl::Status valid = model::validate_lora_spec(spec); !valid.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": ", valid.message()));
  }
  return spec;
}

absl::StatusOr<model::LoraSpec> read_peft_adapter_config(const fs::path& dir) {
  const std::string path = (dir / kAdapterConfigFile).string();
  PLM_ASSIGN_OR_RETURN(const std::string text, model::read_text_file(path));
  PLM_ASSIGN_OR_RETURN(const nlohmann::json json, model::parse_json(text, path));
  return peft_config_spec(json, path);
}

nlohmann::json peft_adapter_config(const model::LoraSpec& spec, const std::string& base_model) {
  std::vector<std::string> targets = spec.targets;
  std::sort(targets.begin(), targets.end());
  // peft 0.21's own keys for a plain LoraConfig; the rest take peft's defaults when loaded.
  return {
      {"alpha_pattern", nlohmann::json::object()},
      {"base_model_name_or_path", base_model},
      {"bias", "none"},
      {"fan_in_fan_out", false},
      {"inference_mode", true},
      {"init_lora_weights", true},
      {"layers_pattern", nullptr},
      {"layers_to_transform", nullptr},
      {"lora_alpha", spec.alpha},
      {"lora_dropout", spec.dropout},
      {"modules_to_save", nullptr},
      {"peft_type", "LORA"},
      {"r", spec.rank},
      {"rank_pattern", nlohmann::json::object()},
      {"revision", nullptr},
      {"target_modules", targets},
      {"task_type", nullptr},
      {"use_dora", spec.dora},
      {"use_rslora", false},
  };
}

absl::Status load_peft_adapter(const fs::path& dir, model::PlmModel& model) {
  PLM_ASSIGN_OR_RETURN(const model::LoraSpec spec, read_peft_adapter_config(dir));
  const std::string path = (dir / kAdapterWeightsFile).string();
  PLM_ASSIGN_OR_RETURN(const model::WeightStore store, model::WeightStore::open(path));
  PLM_RETURN_IF_ERROR(model.attach_lora(spec));
  absl::Status status;
  model.for_each_parameter([&](const std::string& name, Tensor& t) {
    if (!status.ok() || !model::is_lora_parameter(name)) return;
    const std::string key = model::kPeftKeyPrefix + name;
    const absl::StatusOr<model::TensorInfo> info = store.info(key);
    if (!info.ok()) {
      status = absl::NotFoundError(absl::StrCat(path, ": no tensor '", key, "'"));
      return;
    }
    if (!(info->shape == t.shape())) {
      status = absl::InvalidArgumentError(absl::StrCat(path, ": '", key, "' has shape ", info->shape.to_string(),
                                                       ", the model's adapter ", t.shape().to_string()));
      return;
    }
    absl::StatusOr<OwnedTensor> values = store.load(key, t.dtype());
    if (!values.ok()) {
      status = values.status();
      return;
    }
    copy_tensor(t, *values);
  });
  return status;
}

absl::Status write_peft_adapter(const fs::path& dir, model::PlmModel& model, const std::string& base_model) {
  if (!model.lora()) return absl::FailedPreconditionError("the model has no LoRA adapters to write");
  const model::LoraSpec& spec = *model.lora();
  std::error_code error;
  fs::create_directories(dir, error);
  if (error) return absl::InternalError(absl::StrCat(dir.string(), ": cannot create: ", error.message()));

  const nlohmann::json config = peft_adapter_config(spec, base_model);
  PLM_RETURN_IF_ERROR(write_file_durably(dir / kAdapterConfigFile, config.dump(2) + "\n"));

  std::vector<OwnedTensor> values;
  std::vector<std::string> names;
  model.for_each_parameter([&](const std::string& name, Tensor& t) {
    if (!model::is_lora_parameter(name)) return;
    names.push_back(model::kPeftKeyPrefix + name);
    values.push_back(host_f32(t));
  });
  std::vector<model::NamedTensor> tensors;
  for (size_t i = 0; i < names.size(); ++i) tensors.push_back({names[i], values[i].view()});
  return model::write_safetensors((dir / kAdapterWeightsFile).string(), tensors, {{"format", "pt"}});
}

std::map<std::string, OwnedTensor> merged_lora_weights(model::PlmModel& model) {
  std::map<std::string, OwnedTensor> merged;
  model::PlmWeights weights = model.weights();
  for (size_t i = 0; i < weights.text.layers.size(); ++i) {
    const int layer = weights.text.first_layer + static_cast<int>(i);
    weights.text.layers[i].for_each_projection([&](const char* module, model::Linear& linear) {
      if (!linear.lora.attached()) return;
      // The projection on the CPU in f32, so the merge is as exact whatever the working dtype and device.
      const OwnedTensor weight = host_f32(linear.weight), a = host_f32(linear.lora.a), b = host_f32(linear.lora.b);
      const OwnedTensor magnitude = linear.lora.dora ? host_f32(linear.lora.magnitude) : OwnedTensor();
      model::Linear host = linear;
      host.weight = weight;
      host.lora.a = a;
      host.lora.b = b;
      host.lora.magnitude = magnitude;
      OwnedTensor out(weight.shape(), DType::kF32);
      model::lora_merged_weight(out, host);
      merged.emplace(model::text_layer_name(layer, std::string(module) + ".weight"), std::move(out));
    });
  }
  return merged;
}

}  // namespace plm::trainer
