#include "caption/caption_counters.h"

namespace plm::caption {

namespace {

constexpr std::array<int64_t CaptionCounters::*, CaptionCounters::kNumFields> kFields = {
    &CaptionCounters::items_total,       &CaptionCounters::items_done,       &CaptionCounters::errors,
    &CaptionCounters::frames,            &CaptionCounters::prompt_tokens,    &CaptionCounters::completion_tokens,
    &CaptionCounters::latency_us,        &CaptionCounters::prepare_us,       &CaptionCounters::engine_vision_us,
    &CaptionCounters::engine_forward_us, &CaptionCounters::engine_step_us,   &CaptionCounters::replicas_done};

static_assert(sizeof(CaptionCounters) == sizeof(int64_t) * CaptionCounters::kNumFields, "a field is not in kFields");

}  // namespace

std::array<int64_t, CaptionCounters::kNumFields> CaptionCounters::to_array() const {
  std::array<int64_t, kNumFields> values{};
  for (int i = 0; i < kNumFields; ++i) values[i] = this->*kFields[i];
  return values;
}

CaptionCounters CaptionCounters::from_array(const std::array<int64_t, kNumFields>& values) {
  CaptionCounters c;
  for (int i = 0; i < kNumFields; ++i) c.*kFields[i] = values[i];
  return c;
}

}  // namespace plm::caption
