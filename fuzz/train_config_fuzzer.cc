// Fuzzes `plm train --config FILE.yaml key=value ...`: the input is the YAML text, then after a NUL byte the
// overrides, one per line. What parses is then used as a run uses it before any allocation: where() for each key
// given, the layout against world sizes 1..8, and the learning-rate schedule at its first, warmup, middle and last
// steps, which must be finite.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_split.h"
#include "core/check.h"
#include "trainer/train_config.h"

namespace {

void use_config(const plm::trainer::TrainConfig& config) {
  for (const auto& [key, origin] : config.origin) (void)config.where(key);
  for (int world_size = 1; world_size <= 8; ++world_size) (void)plm::trainer::validate_layout(config, world_size);
  const plm::trainer::LrSchedule schedule = config.lr_schedule();
  const int64_t last = schedule.total_steps;
  for (const int64_t step : {int64_t{1}, std::max<int64_t>(1, schedule.warmup_steps), 1 + (last - 1) / 2, last}) {
    const double lr = schedule.at(step);
    PLM_CHECK(std::isfinite(lr)) << "lr at step " << step << " of " << last << " is " << lr;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t nul = input.find('\0');
  const std::string_view yaml = input.substr(0, nul);
  std::vector<std::string> overrides;
  if (nul != std::string_view::npos) {
    overrides = absl::StrSplit(absl::string_view(input.data() + nul + 1, input.size() - nul - 1), '\n',
                               absl::SkipEmpty());
  }
  const auto config = plm::trainer::parse_train_config_text(yaml, "fuzz.yaml", overrides);
  if (config.ok()) use_config(*config);
  return 0;
}
