#include "trainer/optimizer_state_reader.h"

#include <algorithm>
#include <optional>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/status_macros.h"
#include "model/json_fields.h"

namespace plm::trainer {

namespace {

// fallback: the value when the key is absent (a file written before the key existed); none: required.
absl::StatusOr<int64_t> metadata_int(const model::SafetensorsFile& file, const std::string& key,
                                     std::optional<int64_t> fallback = {}) {
  const auto it = file.metadata().find(key);
  if (it == file.metadata().end() && fallback.has_value()) return *fallback;
  int64_t value = 0;
  if (it == file.metadata().end() || !absl::SimpleAtoi(it->second, &value)) {
    return absl::DataLossError(absl::StrCat(file.path(), ": metadata '", key, "' is missing or not an integer"));
  }
  return value;
}

bool is_int_array(const nlohmann::json& j) {
  return j.is_array() && std::all_of(j.begin(), j.end(), [](const nlohmann::json& v) { return v.is_number_integer(); });
}

// The "layout" metadata: [{"name", "offset", "shape", "slice": {"dim", "parts", "num_parts"}}].
template <typename Entry>
absl::StatusOr<std::map<std::string, Entry>> parse_layout(const model::SafetensorsFile& file) {
  std::map<std::string, Entry> layout;
  const auto it = file.metadata().find("layout");
  if (it == file.metadata().end()) return layout;
  PLM_ASSIGN_OR_RETURN(const nlohmann::json entries, model::parse_json(it->second, file.path() + " metadata 'layout'"));
  const auto bad = [&] { return absl::DataLossError(absl::StrCat(file.path(), ": metadata 'layout' is malformed")); };
  if (!entries.is_array()) return bad();
  for (const nlohmann::json& e : entries) {
    if (!e.is_object() || !e.contains("name") || !e["name"].is_string() || !e.contains("offset") ||
        !e["offset"].is_number_integer() || !e.contains("shape") || !is_int_array(e["shape"]) || !e.contains("slice")) {
      return bad();
    }
    const nlohmann::json& s = e["slice"];
    if (!s.is_object() || !s.contains("dim") || !s["dim"].is_number_integer() || !s.contains("parts") ||
        !is_int_array(s["parts"]) || !s.contains("num_parts") || !s["num_parts"].is_number_integer()) {
      return bad();
    }
    const std::vector<int64_t> shape = e["shape"].get<std::vector<int64_t>>();
    layout[e["name"].get<std::string>()] = {
        .offset = e["offset"].get<int64_t>(),
        .shape = Shape(shape.begin(), shape.end()),
        .slice = {.dim = s["dim"].get<int>(),
                  .parts = s["parts"].get<std::vector<int>>(),
                  .num_parts = s["num_parts"].get<int>()}};
  }
  return layout;
}

}  // namespace

absl::StatusOr<OptimizerStateReader> OptimizerStateReader::open(const std::filesystem::path& dir,
                                                                const CheckpointMarker& marker) {
  OptimizerStateReader r;
  r.dir_ = dir;
  r.tp_size_ = marker.layout.tp;
  r.pp_size_ = marker.layout.pp;
  std::optional<int64_t> steps;
  for (const auto& [name, digest] : marker.files) {
    if (!name.starts_with("optim-rank")) continue;
    const std::filesystem::path path = dir / name;
    PLM_ASSIGN_OR_RETURN(std::unique_ptr<model::SafetensorsFile> file, model::SafetensorsFile::open(path.string()));
    PLM_ASSIGN_OR_RETURN(const int64_t tp_rank, metadata_int(*file, "tp_rank", 0));
    PLM_ASSIGN_OR_RETURN(const int64_t tp_size, metadata_int(*file, "tp_size", 1));
    PLM_ASSIGN_OR_RETURN(const int64_t pp_rank, metadata_int(*file, "pp_rank", 0));
    PLM_ASSIGN_OR_RETURN(const int64_t pp_size, metadata_int(*file, "pp_size", 1));
    PLM_ASSIGN_OR_RETURN(const int64_t begin, metadata_int(*file, "begin"));
    PLM_ASSIGN_OR_RETURN(const int64_t end, metadata_int(*file, "end"));
    PLM_ASSIGN_OR_RETURN(const int64_t numel, metadata_int(*file, "numel"));
    PLM_ASSIGN_OR_RETURN(const int64_t file_steps, metadata_int(*file, "steps"));
    if (tp_size != r.tp_size_ || tp_rank < 0 || tp_rank >= tp_size || pp_size != r.pp_size_ || pp_rank < 0 ||
        pp_rank >= pp_size || begin < 0 || begin > end || end > numel) {
      return absl::DataLossError(absl::StrCat(path.string(), ": TP rank ", tp_rank, " of ", tp_size, ", stage ",
                                              pp_rank, " of ", pp_size, ", range [", begin, ", ", end, ") of ", numel,
                                              " in a checkpoint of layout.tp ", r.tp_size_, ", layout.pp ",
                                              r.pp_size_));
    }
    if (steps.has_value() && *steps != file_steps) {
      return absl::DataLossError(absl::StrCat(path.string(), ": AdamW steps ", file_steps, " differ from ", *steps,
                                              " in another shard"));
    }
    steps = file_steps;
    for (const char* state : {kMasterState, kExpAvgState, kExpAvgSqState}) {
      const auto entry = file->entries().find(state);
      if (entry == file->entries().end() || entry->second.dtype != DType::kF32 ||
          entry->second.shape.numel() != end - begin) {
        return absl::DataLossError(absl::StrCat(path.string(), ": '", state, "' is not F32 (", end - begin, ")"));
      }
    }
    Vector& rank = r.parts_[{.pp_rank = static_cast<int>(pp_rank), .tp_rank = static_cast<int>(tp_rank)}];
    if (!rank.files.empty() && rank.numel != numel) {
      return absl::DataLossError(absl::StrCat(path.string(), ": a vector of ", numel, " elements for TP rank ", tp_rank,
                                              " of stage ", pp_rank, ", whose other files say ", rank.numel));
    }
    rank.numel = numel;
    if (rank.layout.empty()) {
      PLM_ASSIGN_OR_RETURN(rank.layout, parse_layout<LayoutEntry>(*file));
    }
    rank.files.push_back({std::move(file), begin, end});
  }
  r.steps_ = steps.value_or(0);
  return r;
}

bool OptimizerStateReader::same_layout(const Part& part,
                                       const std::map<std::string, std::pair<int64_t, int64_t>>& layout) const {
  const auto it = parts_.find(part);
  if (it == parts_.end()) return false;
  const Vector& v = it->second;
  if (v.layout.empty()) {
    int64_t numel = 0;
    for (const auto& [name, place] : layout) numel += place.second;
    return numel == v.numel;
  }
  if (v.layout.size() != layout.size()) return false;
  for (const auto& [name, e] : v.layout) {
    const auto mine = layout.find(name);
    if (mine == layout.end() || mine->second != std::pair(e.offset, e.shape.numel())) return false;
  }
  return true;
}

absl::Status OptimizerStateReader::read_range(const Part& part, const std::string& state, int64_t begin,
                                              Tensor out) const {
  const int64_t end = begin + out.numel();
  int64_t covered = 0;
  const auto it = parts_.find(part);
  if (it != parts_.end()) {
    for (const File& f : it->second.files) {
      const int64_t from = std::max(begin, f.begin), to = std::min(end, f.end);
      if (from >= to) continue;
      const model::SafetensorsEntry& entry = f.file->entries().at(state);
      const Tensor saved(const_cast<std::byte*>(f.file->data(entry)), {f.end - f.begin}, DType::kF32);
      copy_tensor(out.slice(0, from - begin, to - begin), saved.slice(0, from - f.begin, to - f.begin));
      covered += to - from;
    }
  }
  // Shards of one TP rank never overlap, so full coverage is exactly the range's size.
  if (covered != out.numel()) {
    return absl::DataLossError(absl::StrCat(dir_.string(), ": the optimizer files of TP rank ", part.tp_rank,
                                            " of stage ", part.pp_rank, " cover ",
                                            covered, " of the ", out.numel(), " elements [", begin, ", ", end, ")"));
  }
  return absl::OkStatus();
}

absl::Status OptimizerStateReader::read_whole(const std::string& name, const std::string& state, Tensor whole) const {
  std::set<int> parts;  // the blocks placed so far
  int num_parts = 0;
  std::optional<int> stage;  // the first stage that holds the parameter
  for (const auto& [where, rank] : parts_) {
    if (rank.layout.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          dir_.string(), ": its optimizer files do not record their flat layout (written by an older plm): resume it "
                         "at the layout.tp it was written with (", tp_size_, ")"));
    }
    const auto entry = rank.layout.find(name);
    if (entry == rank.layout.end()) continue;  // e.g. a row-parallel bias, on TP rank 0 only
    if (stage.has_value() && *stage != where.pp_rank) continue;  // a tied head's copy of the first stage's
    stage = where.pp_rank;
    const LayoutEntry& e = entry->second;
    OwnedTensor part(e.shape, DType::kF32);
    PLM_RETURN_IF_ERROR(read_range(where, state, e.offset, part.view().reshape({e.shape.numel()})));
    const Shape shape = e.slice.whole_shape(e.shape);
    if (shape.numel() != whole.numel()) {
      return absl::DataLossError(absl::StrCat(dir_.string(), ": ", name, " has ", shape.numel(), " elements in the "
                                              "optimizer state, the model's parameter ", whole.numel()));
    }
    model::place_slice(whole.reshape(shape), part, e.slice);
    parts.insert(e.slice.parts.begin(), e.slice.parts.end());
    num_parts = e.slice.num_parts;
  }
  if (num_parts == 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        dir_.string(), ": no optimizer state for ", name, " (the checkpoint trained other parameters)"));
  }
  if (static_cast<int>(parts.size()) != num_parts) {
    return absl::DataLossError(absl::StrCat(dir_.string(), ": the TP ranks' slices of ", name, " cover ", parts.size(),
                                            " of its ", num_parts, " parts"));
  }
  return absl::OkStatus();
}

}  // namespace plm::trainer
