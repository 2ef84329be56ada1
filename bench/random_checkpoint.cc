#include "bench/random_checkpoint.h"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <system_error>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "bench/counter_random.h"
#include "core/status_macros.h"
#include "model/config.h"
#include "model/weights/hf_names.h"
#include "model/weights/safetensors.h"

namespace plm::bench {

namespace {

namespace fs = std::filesystem;

// HF's default initializer_range (PLM's released configs say so for both sub-configs), also timm's std for
// pos_embed/cls_token.
constexpr float kDefaultInitStd = 0.02f;
// What a model directory carries besides the weights; only config.json must exist.
constexpr const char* kConfigFiles[] = {"config.json", "generation_config.json", "preprocessor_config.json",
                                        "processor_config.json", "video_preprocessor_config.json"};
constexpr const char* kIndexName = "model.safetensors.index.json";

// HF/timm's constant initialisations. Every rank-1 parameter of PLM is a bias, a LayerScale gamma or a
// norm weight; nullopt means normal(0, std) (matrices, embeddings, patch conv, pos_embed, cls_token).
std::optional<float> constant_init(const model::ExpectedTensor& t, const model::PlmConfig& config) {
  if (t.shape.rank() != 1) return std::nullopt;
  const std::string& n = t.name;
  if (n.ends_with(".bias")) return 0.0f;
  if (n.ends_with(".gamma_1") || n.ends_with(".gamma_2")) return static_cast<float>(*config.vision.layer_scale_init);
  return 1.0f;
}

void fill_normal(bf16* out, int64_t n, uint64_t key, float std) {
  const int64_t num_pairs = (n + 1) / 2;
#pragma omp parallel for schedule(static)
  for (int64_t pair = 0; pair < num_pairs; ++pair) {
    float z0, z1;
    normal_pair_from_bits(random_bits(key, static_cast<uint64_t>(pair)), z0, z1);
    out[2 * pair] = bf16(std * z0);
    if (2 * pair + 1 < n) out[2 * pair + 1] = bf16(std * z1);
  }
}

// Consecutive runs of tensors (in HF's order) of at most max_bytes each.
std::vector<std::vector<size_t>> plan_shards(const std::vector<model::ExpectedTensor>& tensors, int64_t max_bytes) {
  std::vector<std::vector<size_t>> shards;
  int64_t shard_bytes = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const int64_t bytes = tensors[i].shape.numel() * static_cast<int64_t>(dtype_size(DType::kBF16));
    if (shards.empty() || (!shards.back().empty() && shard_bytes + bytes > max_bytes)) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards.back().push_back(i);
    shard_bytes += bytes;
  }
  return shards;
}

// HF's names: one file is model.safetensors, several are model-0000k-of-0000n.safetensors.
std::string shard_file_name(size_t shard, size_t num_shards) {
  if (num_shards == 1) return "model.safetensors";
  char name[64];
  std::snprintf(name, sizeof(name), "model-%05zu-of-%05zu.safetensors", shard + 1, num_shards);
  return name;
}

// Creates `dir`, refusing one that already holds weights (stale shards would mix with the new ones).
absl::Status prepare_out_dir(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat(dir.string(), ": cannot create: ", ec.message()));
  for (const fs::directory_entry& entry : fs::directory_iterator(dir, ec)) {
    const fs::path& p = entry.path();
    if (p.extension() == ".safetensors" || p.filename() == kIndexName) {
      return absl::AlreadyExistsError(absl::StrCat(dir.string(), " already holds a checkpoint (", p.filename().string(),
                                                   "); remove it or choose another --out"));
    }
  }
  if (ec) return absl::InternalError(absl::StrCat(dir.string(), ": cannot list: ", ec.message()));
  return absl::OkStatus();
}

absl::Status copy_config_files(const fs::path& from, const fs::path& to) {
  for (const char* name : kConfigFiles) {
    if (!fs::exists(from / name)) continue;
    std::error_code ec;
    fs::copy_file(from / name, to / name, fs::copy_options::overwrite_existing, ec);
    if (ec) return absl::InternalError(absl::StrCat((from / name).string(), ": cannot copy: ", ec.message()));
  }
  return absl::OkStatus();
}

// Writes the layer-count overrides into the copied config.json.
absl::Status override_layers(const fs::path& config_path, const RandomCheckpointOptions& options) {
  if (!options.text_layers && !options.vision_layers) return absl::OkStatus();
  std::ifstream in(config_path);
  const nlohmann::json parsed = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded() || !parsed.contains("text_config") || !parsed.contains("vision_config")) {
    return absl::InvalidArgumentError(absl::StrCat(config_path.string(), ": not a PLM config.json"));
  }
  nlohmann::json config = parsed;
  if (options.text_layers) config["text_config"]["num_hidden_layers"] = *options.text_layers;
  if (options.vision_layers) config["vision_config"]["model_args"]["depth"] = *options.vision_layers;
  std::ofstream out(config_path, std::ios::trunc);
  out << config.dump(2) << "\n";
  out.close();
  if (!out) return absl::InternalError(absl::StrCat(config_path.string(), ": write failed"));
  return absl::OkStatus();
}

// The normal init's std per sub-model: each sub-config's initializer_range, as HF's _init_weights uses it
// (the projector follows the text model). A tiny model needs more than the released configs' 0.02.
struct InitStd {
  float text = kDefaultInitStd;
  float vision = kDefaultInitStd;
  float of(const std::string& tensor_name) const {
    return tensor_name.starts_with(model::kVisionPrefix) ? vision : text;
  }
};

absl::StatusOr<InitStd> read_init_std(const fs::path& config_path) {
  std::ifstream in(config_path);
  const nlohmann::json config = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (config.is_discarded()) return absl::InvalidArgumentError(absl::StrCat(config_path.string(), ": not JSON"));
  InitStd init;
  for (const auto& [key, std] : {std::pair{"text_config", &init.text}, std::pair{"vision_config", &init.vision}}) {
    const auto sub = config.find(key);
    if (sub == config.end() || !sub->contains("initializer_range")) continue;
    const nlohmann::json& value = (*sub)["initializer_range"];
    if (!value.is_number() || value.get<double>() <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(config_path.string(), ": ", key, ".initializer_range must be > 0"));
    }
    *std = value.get<float>();
  }
  return init;
}

absl::Status write_index(const fs::path& path, int64_t total_bytes, const nlohmann::json& weight_map) {
  const nlohmann::json index = {{"metadata", {{"total_size", total_bytes}}}, {"weight_map", weight_map}};
  std::ofstream out(path);
  out << index.dump(2) << "\n";
  out.close();
  if (!out) return absl::InternalError(absl::StrCat(path.string(), ": write failed"));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<RandomCheckpointSummary> write_random_checkpoint(const RandomCheckpointOptions& options) {
  PLM_RETURN_IF_ERROR(model::load_plm_config(options.config_dir).status());
  const fs::path out_dir(options.out_dir);
  PLM_RETURN_IF_ERROR(prepare_out_dir(out_dir));
  PLM_RETURN_IF_ERROR(copy_config_files(options.config_dir, out_dir));
  PLM_RETURN_IF_ERROR(override_layers(out_dir / "config.json", options));
  PLM_ASSIGN_OR_RETURN(const model::PlmConfig config, model::load_plm_config(out_dir.string()));

  PLM_ASSIGN_OR_RETURN(const InitStd init_std, read_init_std(out_dir / "config.json"));
  const std::vector<model::ExpectedTensor> expected = model::expected_tensors(config);
  const std::vector<std::vector<size_t>> shards = plan_shards(expected, options.max_shard_bytes);
  RandomCheckpointSummary summary;
  nlohmann::json weight_map = nlohmann::json::object();
  for (size_t s = 0; s < shards.size(); ++s) {
    const std::string file = shard_file_name(s, shards.size());
    std::vector<OwnedTensor> owned;
    std::vector<model::NamedTensor> named;
    owned.reserve(shards[s].size());
    for (size_t i : shards[s]) {
      const model::ExpectedTensor& t = expected[i];
      owned.emplace_back(t.shape, DType::kBF16);
      bf16* data = owned.back().data_as<bf16>();
      const int64_t n = owned.back().numel();
      if (const std::optional<float> value = constant_init(t, config)) {
        std::fill(data, data + n, bf16(*value));
      } else {
        // Keyed by HF order: shard-size independent.
        fill_normal(data, n, stream_key(options.seed, i), init_std.of(t.name));
      }
      named.push_back({t.name, owned.back()});
      weight_map[t.name] = file;
      summary.num_parameters += n;
      summary.num_bytes += static_cast<int64_t>(owned.back().view().nbytes());
    }
    // HF's safetensors loader rejects files whose metadata lacks a known "format".
    PLM_RETURN_IF_ERROR(model::write_safetensors((out_dir / file).string(), named, {{"format", "pt"}}));
    summary.files.push_back(file);
  }
  if (shards.size() > 1) PLM_RETURN_IF_ERROR(write_index(out_dir / kIndexName, summary.num_bytes, weight_map));
  return summary;
}

int run_make_random_model(const RandomCheckpointOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  const absl::StatusOr<RandomCheckpointSummary> summary = write_random_checkpoint(options);
  if (!summary.ok()) {
    std::fprintf(stderr, "plm bench make-random-model: %s\n", summary.status().ToString().c_str());
    return 1;
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%s: %lld parameters, %.1f MB of bf16 in %zu file(s) (seed %llu, %.1f s)\n", options.out_dir.c_str(),
              static_cast<long long>(summary->num_parameters), summary->num_bytes / 1e6, summary->files.size(),
              static_cast<unsigned long long>(options.seed), seconds);
  for (const std::string& file : summary->files) std::printf("  %s\n", file.c_str());
  return 0;
}

}  // namespace plm::bench
