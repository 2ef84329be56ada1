// The --dtype flag of the inference subcommands (generate, serve, caption, bench generate): which compute mode
// PlmModel::load gets. CPU: f32 (the oracle) or bf16 (model/plm_model.h LoadOptions::cpu_compute), the default
// being the faster one: bf16 where the CPU has AVX512-BF16 (vdpbf16ps), else f32. CUDA computes in bf16 only.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "core/device.h"
#include "model/plm_model.h"

namespace plm::runtime {

// The flag's help text, shared by every subcommand that takes it.
inline constexpr const char* kDtypeFlagHelp =
    "Compute dtype: f32 (the exact oracle) or bf16 (GEMMs on bf16-rounded activations, bf16 KV cache; CUDA's "
    "only mode). CPU default: bf16 where the CPU has AVX512-BF16 (faster), else f32";

// flag: "" (the device's default), "f32" or "bf16". InvalidArgument names the flag for anything else, and for
// f32 on CUDA.
absl::StatusOr<model::LoadOptions> inference_load_options(const std::string& flag, Device device);

}  // namespace plm::runtime
