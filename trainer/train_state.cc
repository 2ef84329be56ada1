#include "trainer/train_state.h"

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"
#include "model/json_fields.h"

namespace plm::trainer {
namespace {

absl::StatusOr<uint64_t> required_uint64(const nlohmann::json& json, const char* key, const std::string& source) {
  const auto it = json.find(key);
  if (it == json.end() || !it->is_number_unsigned()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": ", key, " must be a non-negative integer, got ",
                                                   it == json.end() ? "nothing" : it->dump()));
  }
  return it->get<uint64_t>();
}

}  // namespace

nlohmann::json train_state_to_json(const TrainState& state) {
  return {{"step", state.step},
          {"lr_step", state.lr_step},
          {"data_position", state.data_position},
          {"rng_seed", state.rng_seed},
          {"rng_offset", state.rng_offset},
          {"elapsed_s", state.elapsed_s}};
}

absl::StatusOr<TrainState> train_state_from_json(const nlohmann::json& json, const std::string& source) {
  PLM_ASSIGN_OR_RETURN(const model::JsonFields fields, model::JsonFields::of(json, source, ""));
  TrainState state;
  for (auto [key, field] : {std::pair{"step", &state.step}, std::pair{"lr_step", &state.lr_step},
                            std::pair{"data_position", &state.data_position}}) {
    PLM_ASSIGN_OR_RETURN(*field, fields.required_int(key));
    if (*field < 0) return fields.error(key, absl::StrCat("must be >= 0, got ", *field));
  }
  PLM_ASSIGN_OR_RETURN(state.rng_seed, required_uint64(json, "rng_seed", source));
  PLM_ASSIGN_OR_RETURN(state.rng_offset, required_uint64(json, "rng_offset", source));
  PLM_ASSIGN_OR_RETURN(const std::optional<double> elapsed_s, fields.optional_double("elapsed_s"));
  if (!elapsed_s || *elapsed_s < 0.0) return fields.error("elapsed_s", "must be a number >= 0");
  state.elapsed_s = *elapsed_s;
  return state;
}

absl::StatusOr<TrainState> read_train_state(const std::filesystem::path& checkpoint_dir) {
  const std::string path = (checkpoint_dir / kTrainStateFile).string();
  PLM_ASSIGN_OR_RETURN(const std::string text, model::read_text_file(path));
  PLM_ASSIGN_OR_RETURN(const nlohmann::json json, model::parse_json(text, path));
  return train_state_from_json(json, path);
}

}  // namespace plm::trainer
