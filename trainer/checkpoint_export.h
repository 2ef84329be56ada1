// `plm convert --checkpoint DIR --to-hf OUT`: a training checkpoint as a Hugging Face model directory. The
// checkpoint's trainable parameters are laid over its base model (run.json names it; `base_model` overrides,
// e.g. when the directory moved) and exported by export_hf.
#pragma once

#include <filesystem>
#include <optional>

#include "absl/status/status.h"
#include "core/dtype.h"

namespace plm::trainer {

struct ConvertOptions {
  std::optional<std::filesystem::path> base_model;  // instead of run.json's "model"
  std::optional<DType> dtype;                       // instead of the base checkpoint's dtypes
};

// checkpoint: a complete checkpoint directory (step-XXXXXXXX), or a run's output_dir (its latest complete
// checkpoint). Verified (sizes and CRCs) before it is read.
absl::Status convert_checkpoint_to_hf(const std::filesystem::path& checkpoint, const std::filesystem::path& out_dir,
                                      const ConvertOptions& options = {});

}  // namespace plm::trainer
