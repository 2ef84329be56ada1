#include "trainer/hf_export.h"

#include <unistd.h>

#include <map>
#include <string>
#include <system_error>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/kernels/ops.h"
#include "core/status_macros.h"
#include "model/weights/hf_names.h"
#include "model/weights/safetensors.h"
#include "model/weights/weight_store.h"
#include "model/lora.h"
#include "core/durable_file.h"
#include "trainer/peft_adapter.h"

namespace plm::trainer {

namespace {

bool is_weight_file(const std::filesystem::path& p) {
  const std::string name = p.filename().string();
  return p.extension() == ".safetensors" || name == "model.safetensors.index.json" || p.extension() == ".bin" ||
         name == "pytorch_model.bin.index.json";
}

absl::Status copy_non_weight_files(const std::filesystem::path& from, const std::filesystem::path& to) {
  std::error_code ec;
  for (const std::filesystem::directory_entry& entry : std::filesystem::directory_iterator(from, ec)) {
    if (!entry.is_regular_file() || is_weight_file(entry.path())) continue;
    std::filesystem::copy_file(entry.path(), to / entry.path().filename(), ec);
    if (ec) return absl::InternalError(absl::StrCat("copying ", entry.path().string(), ": ", ec.message()));
  }
  if (ec) return absl::NotFoundError(absl::StrCat(from.string(), ": cannot list the model directory: ", ec.message()));
  return absl::OkStatus();
}

struct ExportTensor {
  std::string name;
  OwnedTensor value;  // host, HF shape, export dtype
};

struct NamedValue {
  std::string name;
  Tensor value;  // the whole tensor (any shape with its element count), on any device
};

absl::StatusOr<std::vector<ExportTensor>> export_tensors(const std::filesystem::path& base_model_dir,
                                                         const model::PlmConfig& config,
                                                         const std::vector<NamedValue>& values,
                                                         std::optional<DType> dtype) {
  PLM_ASSIGN_OR_RETURN(const model::WeightStore base, model::WeightStore::open(base_model_dir.string()));
  std::map<std::string, Shape> hf_shapes;
  for (const model::ExpectedTensor& e : model::expected_tensors(config)) hf_shapes[e.name] = e.shape;
  std::vector<ExportTensor> out;
  for (const NamedValue& v : values) {
    const auto shape = hf_shapes.find(v.name);
    if (shape == hf_shapes.end()) {
      return absl::InternalError(absl::StrCat("parameter ", v.name, " is not one of the HF model's"));
    }
    DType target = v.value.dtype();
    if (dtype.has_value()) {
      target = *dtype;
    } else if (absl::StatusOr<model::TensorInfo> info = base.info(v.name); info.ok()) {
      target = info->dtype;
    }
    const OwnedTensor host = to_device(v.value, Device::cpu());
    OwnedTensor converted(shape->second, target);
    cast(converted.view().reshape({host.numel()}), host.view().reshape({host.numel()}));
    out.push_back({v.name, std::move(converted)});
    hf_shapes.erase(shape);
  }
  if (!hf_shapes.empty()) {
    return absl::InternalError(absl::StrCat("the model holds no ", hf_shapes.begin()->first, " (", hf_shapes.size(),
                                            " HF tensors missing): export needs the whole model"));
  }
  return out;
}

absl::Status write_weights(const std::filesystem::path& dir, const std::vector<ExportTensor>& tensors) {
  std::vector<std::vector<model::NamedTensor>> shards(1);
  uint64_t shard_bytes = 0, total_bytes = 0;
  for (const ExportTensor& t : tensors) {
    const uint64_t bytes = t.value.view().nbytes();
    if (shard_bytes > 0 && shard_bytes + bytes > kMaxShardBytes) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards.back().push_back({t.name, t.value.view()});
    shard_bytes += bytes;
    total_bytes += bytes;
  }
  const std::map<std::string, std::string> metadata = {{"format", "pt"}};
  if (shards.size() == 1) return model::write_safetensors((dir / "model.safetensors").string(), shards[0], metadata);
  nlohmann::json weight_map = nlohmann::json::object();
  for (size_t i = 0; i < shards.size(); ++i) {
    const std::string file = absl::StrFormat("model-%05d-of-%05d.safetensors", i + 1, shards.size());
    PLM_RETURN_IF_ERROR(model::write_safetensors((dir / file).string(), shards[i], metadata));
    for (const model::NamedTensor& t : shards[i]) weight_map[t.name] = file;
  }
  const nlohmann::json index = {{"metadata", {{"total_size", total_bytes}}}, {"weight_map", weight_map}};
  return write_file_durably(dir / "model.safetensors.index.json", index.dump(2) + "\n");
}

// Writes `values` as out_dir (atomically, next to it first).
absl::Status write_export(const std::filesystem::path& base_model_dir, const model::PlmConfig& config,
                          const std::vector<NamedValue>& values, const std::filesystem::path& out_dir,
                          std::optional<DType> dtype) {
  const std::filesystem::path staging = out_dir.string() + absl::StrCat(".tmp-", getpid());
  const std::filesystem::path old = out_dir.string() + absl::StrCat(".old-", getpid());
  std::error_code ec;
  std::filesystem::remove_all(staging, ec);
  std::filesystem::create_directories(staging, ec);
  if (ec) return absl::InternalError(absl::StrCat("creating ", staging.string(), ": ", ec.message()));
  absl::Status status = [&]() -> absl::Status {
    PLM_RETURN_IF_ERROR(copy_non_weight_files(base_model_dir, staging));
    PLM_ASSIGN_OR_RETURN(const std::vector<ExportTensor> tensors,
                         export_tensors(base_model_dir, config, values, dtype));
    PLM_RETURN_IF_ERROR(write_weights(staging, tensors));
    PLM_RETURN_IF_ERROR(fsync_directory(staging));
    if (std::filesystem::exists(out_dir)) PLM_RETURN_IF_ERROR(rename_durably(out_dir, old));
    return rename_durably(staging, out_dir);
  }();
  std::filesystem::remove_all(old, ec);
  if (!status.ok()) {
    std::filesystem::remove_all(staging, ec);
    return absl::Status(status.code(), absl::StrCat("writing ", out_dir.string(), ": ", status.message()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status export_hf(const std::filesystem::path& base_model_dir, model::PlmModel& model,
                       const std::filesystem::path& out_dir, std::optional<DType> dtype) {
  const std::map<std::string, OwnedTensor> merged = merged_lora_weights(model);
  std::vector<NamedValue> values;
  model::PlmWeights weights = model.weights();
  weights.for_each_parameter([&](const std::string& name, Tensor& t) {
    if (model::is_lora_parameter(name)) return;
    const auto merged_weight = merged.find(name);
    values.push_back({name, merged_weight != merged.end() ? merged_weight->second.view() : t});
  });
  return write_export(base_model_dir, model.config(), values, out_dir, dtype);
}

absl::Status export_hf(const std::filesystem::path& base_model_dir, const model::PlmConfig& config,
                       const std::vector<model::WholeParameter>& params, const std::filesystem::path& out_dir,
                       std::optional<DType> dtype) {
  std::vector<NamedValue> values;
  for (const model::WholeParameter& p : params) values.push_back({p.name, p.value.view()});
  return write_export(base_model_dir, config, values, out_dir, dtype);
}

}  // namespace plm::trainer
