#include "runtime/compute_dtype.h"

#include "absl/strings/str_cat.h"

namespace plm::runtime {

absl::StatusOr<model::LoadOptions> inference_load_options(const std::string& flag, Device device) {
  model::LoadOptions options;
  if (flag.empty() || (flag == "bf16" && device.is_cuda())) return options;
  if (flag == "bf16") {
    options.cpu_compute = DType::kBF16;
    return options;
  }
  if (flag == "f32" && device.is_cpu()) return options;
  return absl::InvalidArgumentError(absl::StrCat("--dtype ", flag, ": ",
                                                 device.is_cuda() ? "CUDA computes in bf16" : "expected f32 or bf16"));
}

}  // namespace plm::runtime
