// Writes a trained model as a Hugging Face model directory (output_dir/final-hf, `plm convert --to-hf`):
// every file of the base model directory that is not a weight file (config.json, generation_config.json,
// tokenizer, processor and chat template files) copied, and the model's parameters under their HF names and
// shapes (adapters merged in), each in the dtype the base checkpoint stores it in (bf16 for PLM's releases) unless `dtype` is given.
// Up to kMaxShardBytes the weights go to model.safetensors, beyond that to model-0000i-of-0000n.safetensors
// with model.safetensors.index.json, as transformers' save_pretrained does. The directory appears atomically: it
// is written next to `out_dir` and renamed into place (replacing an older export).
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "core/dtype.h"
#include "model/plm_model.h"
#include "model/whole_parameters.h"

namespace plm::trainer {

inline constexpr uint64_t kMaxShardBytes = uint64_t{5} << 30;

// model: one rank holding all of it. LoRA / DoRA adapters are merged into the projections they adapt (as peft's
// merge_and_unload), so the export is a plain HF checkpoint.
absl::Status export_hf(const std::filesystem::path& base_model_dir, model::PlmModel& model,
                       const std::filesystem::path& out_dir, std::optional<DType> dtype = std::nullopt);
// The same from every parameter of `config`'s model, whole, by HF name (a tensor-parallel model's, gathered by
// model/whole_parameters.h).
absl::Status export_hf(const std::filesystem::path& base_model_dir, const model::PlmConfig& config,
                       const std::vector<model::WholeParameter>& params, const std::filesystem::path& out_dir,
                       std::optional<DType> dtype = std::nullopt);

}  // namespace plm::trainer
