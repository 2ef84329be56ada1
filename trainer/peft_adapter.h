// PEFT adapter directories, the format peft's save_pretrained writes and PeftModel.from_pretrained loads:
//   adapter_config.json          peft's LoraConfig (peft_type "LORA", r, lora_alpha, lora_dropout,
//                                target_modules, use_dora, base_model_name_or_path, ...)
//   adapter_model.safetensors    "base_model.model.<HF module>.lora_A.weight" (r, in), ".lora_B.weight"
//                                (out, r), ".lora_magnitude_vector" (out, DoRA); F32, metadata {"format": "pt"}
// Reading one attaches its adapters to a model; writing one saves a model's adapters; merging gives the
// targeted weights as peft's merge_and_unload() does, for an HF export. The model's adapters are the
// rank's own (tp = 1); with data parallelism every rank holds all of them and rank 0 writes.
#pragma once

#include <filesystem>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/tensor.h"
#include "model/lora.h"
#include "model/plm_model.h"
#include "trainer/train_config.h"

namespace plm::trainer {

inline constexpr const char* kAdapterConfigFile = "adapter_config.json";
inline constexpr const char* kAdapterWeightsFile = "adapter_model.safetensors";

// The adapters a run's `lora` section asks for; A's random init is keyed by the run's seed.
model::LoraSpec lora_spec(const TrainConfig::Lora& lora, uint64_t seed);

// dir/adapter_config.json as a spec. Errors name the file and the key: a non-LORA peft_type, a field this
// implementation does not follow (use_rslora, a bias, modules_to_save, layer or rank patterns, target_modules
// as a regular expression) or a target other than the decoder's seven projections.
absl::StatusOr<model::LoraSpec> read_peft_adapter_config(const std::filesystem::path& dir);
// The same from parsed JSON; `source` names it in errors.
absl::StatusOr<model::LoraSpec> peft_config_spec(const nlohmann::json& json, const std::string& source);
// adapter_config.json's content for `spec` (targets sorted, as peft writes its set).
nlohmann::json peft_adapter_config(const model::LoraSpec& spec, const std::string& base_model);

// Attaches the adapters of `dir` to `model` (read_peft_adapter_config) and loads their values: every adapter
// tensor the model now holds must be in adapter_model.safetensors with its shape; the file may hold more
// (layers of other pipeline stages). Call it before DataParallelStep takes the parameters. A config or file
// that does not open leaves the model as it was; a missing or mis-shaped tensor leaves it with adapters of
// unspecified values (discard the model).
absl::Status load_peft_adapter(const std::filesystem::path& dir, model::PlmModel& model);

// Writes dir/adapter_config.json and dir/adapter_model.safetensors (F32) from the model's adapters, each
// file atomically; creates dir. base_model: peft's base_model_name_or_path (the run's `model`).
absl::Status write_peft_adapter(const std::filesystem::path& dir, model::PlmModel& model,
                                const std::string& base_model);

// Every adapted projection's weight with its adapter merged in (model/layers/lora.h lora_merged_weight, in
// f32 on the CPU), by HF name ("model.language_model.layers.0.self_attn.q_proj.weight"): an HF export writes
// these in place of the base weights and leaves the adapter tensors out (model::is_lora_parameter).
std::map<std::string, OwnedTensor> merged_lora_weights(model::PlmModel& model);

}  // namespace plm::trainer
