#include "runtime/model_directory.h"

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"
#include "data/tokenizer_loader.h"

namespace plm::runtime {

std::vector<int32_t> ModelDirectory::eos_token_ids() const {
  if (generation.has_value() && !generation->eos_token_ids.empty()) return generation->eos_token_ids;
  return config.text.eos_token_ids;
}

absl::StatusOr<ModelDirectory> open_model_directory(const std::filesystem::path& dir) {
  PLM_ASSIGN_OR_RETURN(model::PlmConfig config, model::load_plm_config(dir.string()));
  PLM_ASSIGN_OR_RETURN(data::Tokenizer tokenizer, data::load_tokenizer(dir));
  PLM_ASSIGN_OR_RETURN(data::ProcessorConfig processor, data::load_processor_config(dir));
  if (processor.image.tile_size != config.vision.img_size) {
    return absl::FailedPreconditionError(absl::StrCat(dir.string(), ": the processor's tile_size (",
                                                      processor.image.tile_size,
                                                      ") differs from the vision tower's img_size (",
                                                      config.vision.img_size, ")"));
  }
  ModelDirectory out{.path = dir,
                     .config = std::move(config),
                     .generation = std::nullopt,
                     .tokenizer = std::move(tokenizer),
                     .processor = std::move(processor)};
  PLM_ASSIGN_OR_RETURN(out.generation, model::load_generation_config(dir.string()));
  return out;
}

}  // namespace plm::runtime
