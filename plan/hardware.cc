#include "plan/hardware.h"

#include <unistd.h>

#include "absl/strings/str_cat.h"

namespace plm::plan {

namespace {

constexpr int64_t kGiB = int64_t{1} << 30;
constexpr double kGB = 1e9;

// Spec-sheet numbers; the efficiency is the share of the bf16 peak a dense decoder's GEMMs sustain in training.
Hardware h100() {
  return {.name = "h100", .memory_bytes = 80 * kGiB, .peak_flops = 989e12, .efficiency = 0.40,
          .memory_bytes_per_s = 3350 * kGB, .intra_node_bytes_per_s = 450 * kGB, .inter_node_bytes_per_s = 50 * kGB,
          .runtime_bytes = 2 * kGiB, .dtype = DType::kBF16};
}

Hardware h200() {
  Hardware h = h100();
  h.name = "h200";
  h.memory_bytes = 141 * static_cast<int64_t>(kGB);
  h.memory_bytes_per_s = 4800 * kGB;
  return h;
}

Hardware a100() {
  return {.name = "a100", .memory_bytes = 80 * kGiB, .peak_flops = 312e12, .efficiency = 0.45,
          .memory_bytes_per_s = 2039 * kGB, .intra_node_bytes_per_s = 300 * kGB, .inter_node_bytes_per_s = 25 * kGB,
          .runtime_bytes = 2 * kGiB, .dtype = DType::kBF16};
}

// The CPU backend trains in f32. Its process baseline (libraries, tokenizer) is not modelled: runtime 0, so a
// prediction is what training adds to a process (bench/plan_memory_check.sh compares it with the RSS growth).
Hardware cpu() {
  const int64_t pages = sysconf(_SC_PHYS_PAGES), page_bytes = sysconf(_SC_PAGESIZE);
  return {.name = "cpu", .memory_bytes = pages * page_bytes, .peak_flops = 100e9, .efficiency = 0.5,
          .memory_bytes_per_s = 20 * kGB, .intra_node_bytes_per_s = 10 * kGB, .inter_node_bytes_per_s = 1 * kGB,
          .runtime_bytes = 0, .dtype = DType::kF32};
}

}  // namespace

absl::StatusOr<Hardware> hardware_preset(std::string_view name) {
  if (name == "h100") return h100();
  if (name == "h200") return h200();
  if (name == "a100") return a100();
  if (name == "cpu") return cpu();
  return absl::InvalidArgumentError(
      absl::StrCat("unknown hardware '", absl::string_view(name.data(), name.size()), "' (h100, h200, a100 or cpu)"));
}

}  // namespace plm::plan
