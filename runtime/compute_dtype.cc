#include "runtime/compute_dtype.h"

#include "absl/strings/str_cat.h"
#include "core/kernels/cpu/gemm_bf16.h"

namespace plm::runtime {

absl::StatusOr<model::LoadOptions> inference_load_options(const std::string& flag, Device device) {
  model::LoadOptions options;
  if (device.is_cuda() && (flag.empty() || flag == "bf16")) return options;
  if (flag == "bf16" || (flag.empty() && cpu::cpu_has_avx512_bf16())) {
    options.cpu_compute = DType::kBF16;
    return options;
  }
  if ((flag.empty() || flag == "f32") && device.is_cpu()) return options;
  return absl::InvalidArgumentError(absl::StrCat("--dtype ", flag, ": ",
                                                 device.is_cuda() ? "CUDA computes in bf16" : "expected f32 or bf16"));
}

}  // namespace plm::runtime
