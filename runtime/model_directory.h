// ModelDirectory: everything of a Hugging Face PLM directory except the weights, read in one place for every
// subcommand that runs a model (generate, train, serve, caption, data pack): the model config, the generation
// config, the tokenizer (with the chat template's special tokens) and the processor settings, checked against
// each other (the processor's tile size must be the vision tower's image size). Loading the weights is
// model::PlmModel::load's job, which takes the same directory.
#pragma once

#include <filesystem>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "data/processor_config.h"
#include "data/tokenizer.h"
#include "model/config.h"

namespace plm::runtime {

struct ModelDirectory {
  std::filesystem::path path;
  model::PlmConfig config;
  std::optional<model::GenerationConfig> generation;  // generation_config.json, when present
  data::Tokenizer tokenizer;
  data::ProcessorConfig processor;

  // Token ids that end a reply: generation_config.json's eos_token_id when it names any, else config.json's.
  std::vector<int32_t> eos_token_ids() const;
};

// Errors name the file and the problem.
absl::StatusOr<ModelDirectory> open_model_directory(const std::filesystem::path& dir);

}  // namespace plm::runtime
