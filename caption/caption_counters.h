// What a caption job has done so far, as plain integers so that the replicas of a data-parallel job can sum
// theirs with one all-reduce (caption/replica_sync.h). Times are microseconds.
#pragma once

#include <array>
#include <cstdint>

namespace plm::caption {

struct CaptionCounters {
  int64_t items_total = 0;        // to caption in this run (items finished by an earlier run not counted)
  int64_t items_done = 0;         // captions + errors
  int64_t errors = 0;
  int64_t frames = 0;             // video frames / image tiles of the captioned items
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  int64_t latency_us = 0;         // summed over the captioned items: decode start to last token
  int64_t prepare_us = 0;         // decode + preprocess + tokenize, summed over items (worker time)
  int64_t engine_vision_us = 0;   // the engine's vision tower + projector time
  int64_t engine_forward_us = 0;  // the engine's decoder forward time (prefill and decode)
  int64_t engine_step_us = 0;     // the engine's whole step time
  int64_t replicas_done = 0;      // replicas whose items are all finished

  static constexpr int kNumFields = 12;
  std::array<int64_t, kNumFields> to_array() const;
  static CaptionCounters from_array(const std::array<int64_t, kNumFields>& values);
};

}  // namespace plm::caption
