// Hardware: what the layout planner assumes about one accelerator and the links between them. The presets are
// public spec-sheet figures (spec/anchors_training.md §2.1, §2.5) with an achievable fraction of the matmul peak
// (35-48 % MFU is what the best dense bf16 trainers reach on H100, §2.2); every field can be overridden from the
// command line. `cpu` describes this repository's CPU backend (f32 everywhere) for the validation runs.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "core/dtype.h"

namespace plm::plan {

struct Hardware {
  std::string name = {};
  int64_t memory_bytes = 0;              // per device
  double peak_flops = 0.0;               // dense matmul peak in `dtype`, per device
  double efficiency = 0.0;               // fraction of peak_flops the model's matmuls reach (the MFU ceiling)
  double memory_bytes_per_s = 0.0;       // device memory bandwidth (what bounds decoding)
  double intra_node_bytes_per_s = 0.0;   // per device, one direction, to the devices of its node (NVLink)
  double inter_node_bytes_per_s = 0.0;   // per device, one direction, to other nodes (InfiniBand / RoCE)
  int64_t runtime_bytes = 0;             // CUDA context, library workspaces, allocator slack
  DType dtype = DType::kBF16;            // working weights, gradients, activations and KV (f32 on CPU)
};

// "h100" (SXM 80 GB), "h200", "a100" (SXM 80 GB) or "cpu" (this machine's memory, f32, a nominal 100 GFLOP/s);
// InvalidArgument naming the known presets otherwise.
absl::StatusOr<Hardware> hardware_preset(std::string_view name);

}  // namespace plm::plan
