#include "trainer/checkpoint_export.h"

#include <map>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"
#include "model/plm_model.h"
#include "trainer/checkpoint_io.h"
#include "trainer/hf_export.h"
#include "trainer/peft_adapter.h"
#include "trainer/training_checkpoint.h"

namespace plm::trainer {

namespace {

absl::StatusOr<std::filesystem::path> checkpoint_dir(const std::filesystem::path& given) {
  if (std::filesystem::exists(given / kCompleteMarker)) return given;
  PLM_ASSIGN_OR_RETURN(const CheckpointScan scan, latest_complete_checkpoint(given, Verify::kSizes));
  if (!scan.latest.has_value()) {
    return absl::NotFoundError(absl::StrCat(given.string(), ": neither a complete checkpoint (no ", kCompleteMarker,
                                            ") nor an output_dir holding one"));
  }
  return scan.latest->dir;
}

}  // namespace

absl::Status convert_checkpoint_to_hf(const std::filesystem::path& checkpoint, const std::filesystem::path& out_dir,
                                      const ConvertOptions& options) {
  PLM_ASSIGN_OR_RETURN(const std::filesystem::path dir, checkpoint_dir(checkpoint));
  PLM_ASSIGN_OR_RETURN(const CheckpointMarker marker, read_checkpoint_marker(dir));
  PLM_RETURN_IF_ERROR(verify_checkpoint_files(dir, marker, Verify::kSizesAndCrcs));
  PLM_ASSIGN_OR_RETURN(const nlohmann::json info, read_run_info(dir));
  const std::string info_file = (dir / kRunInfoFile).string();
  std::filesystem::path base;
  if (options.base_model.has_value()) {
    base = *options.base_model;
  } else if (info.contains("model") && info["model"].is_string()) {
    base = info["model"].get<std::string>();
  } else {
    return absl::DataLossError(absl::StrCat(info_file, ": no \"model\" string"));
  }
  PLM_ASSIGN_OR_RETURN(std::unique_ptr<model::PlmModel> model,
                       model::PlmModel::load(base.string(), Device::cpu(), {}, {.for_training = true}));
  // A LoRA run's checkpoint holds its adapters: attach the same ones, then merge them on export.
  if (info.contains("lora") && !info["lora"].is_null()) {
    PLM_ASSIGN_OR_RETURN(const model::LoraSpec spec, peft_config_spec(info["lora"], info_file + " \"lora\""));
    PLM_RETURN_IF_ERROR(model->attach_lora(spec));
  }
  std::map<std::string, ParameterTarget> targets;
  model->for_each_parameter(
      [&](const std::string& name, Tensor& t) { targets[name] = {t, model->tensor_slice(name)}; });
  PLM_RETURN_IF_ERROR(read_checkpoint_parameters(dir, targets, /*every_target_saved=*/false));
  return export_hf(base, *model, out_dir, options.dtype);
}

}  // namespace plm::trainer
