// TrainConfig: what `plm train --config FILE.yaml [key.sub=value ...]` runs (keys and defaults: README.md in
// this folder). parse_train_config reads the YAML file, applies the command-line overrides (each value is
// parsed as YAML, so `optimizer.betas=[0.9,0.95]` and `data.shuffle=false` keep their types), then checks
// every key; every error names the key and where its value came from (FILE:LINE or the override).
// Relative paths (model, data.train, output_dir) resolve against the current directory, as any path on a
// command line does, not against the YAML file's folder. validate_layout checks the config against the
// world size, which only the launch knows.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "core/device.h"
#include "data/sft_sample.h"
#include "distributed/parallel_dims.h"
#include "model/recompute.h"
#include "trainer/lr_schedule.h"

namespace plm::trainer {

// Which tokens carry a label (data/sft_sample.h).
using data::LabelMode;
// Activation recomputation per block (the model's policy, model/recompute.h).
using model::Recompute;
using model::recompute_text;

// The dtype of final-hf's weights: each tensor's as the base checkpoint stores it (auto), or one for all.
enum class ExportDType { kAuto, kBF16, kF16, kF32 };
std::string_view export_dtype_text(ExportDType dtype);  // "auto", "bf16", "f16", "f32"
// kAuto: none (keep the base's).
std::optional<DType> export_dtype_value(ExportDType dtype);

// The module names LoRA can adapt (HF Llama names), in this order.
inline constexpr std::array<std::string_view, 7> kLoraTargetNames = {"q_proj",    "k_proj",  "v_proj",  "o_proj",
                                                                     "gate_proj", "up_proj", "down_proj"};

struct TrainConfig {
  std::filesystem::path model;  // HF model directory, absolute
  struct Data {
    std::filesystem::path train;                  // SFT JSONL or `plm data pack` HDF5, absolute
    bool shuffle = true;                          // deterministic per-epoch shuffle from `seed`
    std::optional<int> num_frames;                // video frames; unset: as at inference (up to 32)
    LabelMode labels = LabelMode::kAssistant;
  } data;
  uint64_t seed = 42;
  int64_t steps = 0;  // optimizer steps, required
  struct Batch {
    std::optional<int> global;  // samples per optimizer step over all DP ranks; unset: micro * dp
    int micro = 1;              // samples per forward/backward on one rank
  } batch;
  struct Optimizer {  // AdamW, torch semantics
    double lr = 5e-5;
    std::array<double, 2> betas = {0.9, 0.999};
    double eps = 1e-8;
    double weight_decay = 0.0;  // decoupled, on parameters with >= 2 dims
    double grad_clip = 1.0;     // max global L2 norm; 0: no clipping
  } optimizer;
  struct Schedule {
    ScheduleName name = ScheduleName::kLinear;
    int64_t warmup_steps = 0;
    double min_lr = 0.0;
    std::optional<int64_t> decay_steps;  // wsd only (required there): length of the final decay phase
  } schedule;
  struct Layout {
    int tp = 1;
    int pp = 1;
    // Share of the prompt tokens that are media placeholders, for the cost-aware split of the decoder layers over
    // the stages (model/parallel.h cost_aware_stage_layers: stage 0 also runs the vision tower, the last stage the
    // LM head and loss over the text tokens).
    double pp_media_fraction = 0.0;
    // Decoder layers per stage (layout.pp entries), e.g. [10, 6]; empty: the cost-aware split above.
    std::vector<int> pp_layers;
    std::optional<int> dp;  // unset: world size / (tp * pp)
    int zero = 0;           // 0: replicated AdamW; 1: optimizer state sharded over DP; 2: + gradients
  } layout;
  struct Freeze {
    bool vision = false;
    bool projector = false;
    bool llm = false;
  } freeze;
  struct Lora {
    int rank = 0;  // 0: no LoRA (full fine-tuning of the unfrozen parts)
    double alpha = 8.0;
    double dropout = 0.0;
    std::vector<std::string> targets = {"q_proj", "v_proj"};  // each one of kLoraTargetNames
    bool dora = false;
    std::filesystem::path init;  // a PEFT adapter directory to start from (its config must agree); empty: peft's init
    bool merge = false;          // also write output_dir/final-hf with the adapters merged in
  } lora;
  DeviceType device = DeviceType::kCpu;
  std::filesystem::path output_dir;  // absolute
  struct Checkpoint {
    int64_t every = 500;  // steps between checkpoints; 0: only at the end and on SIGTERM/SIGUSR1
    int keep = 2;         // complete checkpoints kept; 0: all
  } checkpoint;
  int64_t log_every = 1;  // steps between progress lines (metrics.jsonl and tb/ get every step)
  bool resume = false;    // true: a complete checkpoint in output_dir must exist
  Recompute recompute = Recompute::kNone;
  // CPU: f32, or bf16 (every projection's and the head's GEMMs on bf16-rounded operands with f32 sums, the
  // master weights, optimizer and the rest in f32: PyTorch autocast's numerics). CUDA trains in bf16 either way.
  DType dtype = DType::kF32;
  ExportDType export_dtype = ExportDType::kAuto;  // final-hf's weights: the base checkpoint's dtypes, or one

  std::string source;                         // the YAML file
  std::map<std::string, std::string> origin;  // key -> "FILE:LINE" or "override 'key=value'", keys given only

  // Where `key`'s value came from, for messages: its origin, or "FILE (default)".
  std::string where(std::string_view key) const;
  LrSchedule lr_schedule() const;
};

// Reads `yaml_path` and applies `overrides` ("key.sub=value", later ones win).
absl::StatusOr<TrainConfig> parse_train_config(const std::filesystem::path& yaml_path,
                                               const std::vector<std::string>& overrides);
// The same over YAML text; `source` names it in errors.
absl::StatusOr<TrainConfig> parse_train_config_text(std::string_view yaml, std::string source,
                                                    const std::vector<std::string>& overrides);

// The batch and parallel layout of a run, resolved against the world size.
struct TrainLayout {
  distributed::ParallelDims dims;
  int zero = 0;
  int global_batch = 0;        // samples per optimizer step, all DP ranks
  int micro_batch = 0;         // samples per forward/backward on one rank
  int accumulation_steps = 0;  // global_batch / (micro_batch * dp)
};

// Fails, naming the key and the arithmetic, when tp * pp * dp != world size, when batch.global is not a
// multiple of batch.micro * dp, or when LoRA asks for tp > 1 or pp > 1. Whether
// the model splits into tp is the model's check (model/parallel.h validate_parallel_layout), at load.
absl::StatusOr<TrainLayout> validate_layout(const TrainConfig& config, int world_size);

}  // namespace plm::trainer
