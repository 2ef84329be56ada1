// The learning rate at optimizer step k (1-based) of S. Every schedule starts with a linear warmup
// lr·k/W for k ≤ W (none when W = 0), then:
//   constant  lr
//   cosine    min_lr + (lr − min_lr)·½(1 + cos(π(k−W)/(S−W)))
//   linear    lr + (min_lr − lr)·(k−W)/(S−W)
//   wsd       warmup-stable-decay: lr until step S−D, then lr + (min_lr − lr)·(k−(S−D))/D over the last D steps
// so cosine, linear and wsd reach min_lr exactly at step S. Pure functions; the caller validated the config.
#pragma once

#include <cstdint>
#include <string_view>

namespace plm::trainer {

enum class ScheduleName { kConstant, kCosine, kLinear, kWsd };

std::string_view schedule_name_text(ScheduleName name);  // "constant", "cosine", "linear", "wsd"

struct LrSchedule {
  ScheduleName name = ScheduleName::kLinear;
  double lr = 0.0;             // peak learning rate
  double min_lr = 0.0;         // the value cosine, linear and wsd reach at the last step
  int64_t warmup_steps = 0;    // W, 0 <= W <= S
  int64_t total_steps = 1;     // S >= 1
  int64_t decay_steps = 0;     // D, wsd only: 1 <= D <= S − W

  // PLM_CHECKs 1 <= step <= total_steps.
  double at(int64_t step) const;
};

}  // namespace plm::trainer
