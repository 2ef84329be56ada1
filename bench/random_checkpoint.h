// `plm bench make-random-model`: a PLM checkpoint with random bf16 weights, written as a Hugging Face model
// directory (config files copied from a config folder such as configs/plm-1b, safetensors shards plus
// model.safetensors.index.json when there is more than one), so benchmarks need no download. Weights are
// initialised like HF/timm (normal(0, initializer_range) for matrices, embeddings and pos_embed/cls_token, per
// sub-config, 0.02 when unset; ones for norm weights, zeros for biases, the config's LayerScale init for
// gamma_1/gamma_2) from a counter-based generator: the same seed gives the same bytes whatever the thread
// count or shard size.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace plm::bench {

struct RandomCheckpointOptions {
  std::string config_dir;                      // holds config.json (+ generation/processor configs)
  std::string out_dir;                         // created; must not already hold a checkpoint
  uint64_t seed = 0;
  int64_t max_shard_bytes = 2'000'000'000;     // HF's "2GB"; a larger single tensor gets its own shard
  // Fewer layers at the same widths (e.g. a PLM-1B-shaped model whose optimizer state fits in memory):
  // written into the copied config.json (text_config.num_hidden_layers, vision_config.model_args.depth).
  std::optional<int> text_layers;
  std::optional<int> vision_layers;
};

struct RandomCheckpointSummary {
  int64_t num_parameters = 0;
  int64_t num_bytes = 0;               // tensor data over all shards
  std::vector<std::string> files;      // safetensors files written, in order
};

// Memory: one shard's tensors at a time (at most max_shard_bytes, or the largest tensor).
absl::StatusOr<RandomCheckpointSummary> write_random_checkpoint(const RandomCheckpointOptions& options);

// The CLI entry point: writes the checkpoint and prints what it wrote. Returns the process exit code.
int run_make_random_model(const RandomCheckpointOptions& options);

}  // namespace plm::bench
