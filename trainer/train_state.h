// TrainState: the scalars a resume needs besides weights and optimizer moments, stored as train_state.json
// in each checkpoint. With them a resumed run draws the same samples, dropout masks and learning rates as the
// uninterrupted one.
#pragma once

#include <cstdint>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"

namespace plm::trainer {

inline constexpr const char* kTrainStateFile = "train_state.json";

struct TrainState {
  int64_t step = 0;           // optimizer steps completed
  int64_t lr_step = 0;        // the LR schedule's position (the step whose LR was used last)
  int64_t data_position = 0;  // samples consumed from the (shuffled, epoch-wrapping) stream, all DP ranks
  uint64_t rng_seed = 0;      // counter-based RNG (dropout): its seed
  uint64_t rng_offset = 0;    //   and the number of values drawn so far
  double elapsed_s = 0.0;     // training wall time so far, summed over every run of this output_dir
  bool operator==(const TrainState&) const = default;
};

nlohmann::json train_state_to_json(const TrainState& state);
// `source` names the text in errors.
absl::StatusOr<TrainState> train_state_from_json(const nlohmann::json& json, const std::string& source);
// checkpoint_dir/train_state.json.
absl::StatusOr<TrainState> read_train_state(const std::filesystem::path& checkpoint_dir);

}  // namespace plm::trainer
