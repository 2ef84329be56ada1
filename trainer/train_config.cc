#include "trainer/train_config.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <set>
#include <span>
#include <system_error>
#include <type_traits>
#include <utility>

#include <yaml-cpp/yaml.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/check.h"
#include "core/status_macros.h"
#include "data/read_file.h"

namespace plm::trainer {
namespace {

absl::string_view sv(std::string_view s) { return {s.data(), s.size()}; }

// ---- Scalar parsing with YAML 1.2 core-schema semantics: a quoted scalar is a string, never a number. ----

bool is_quoted(const YAML::Node& node) { return node.Tag() == "!"; }

std::string describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar:
      return absl::StrCat(is_quoted(node) ? "the string \"" : "'", node.Scalar(), is_quoted(node) ? "\"" : "'");
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Map: return "a mapping";
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined: return "nothing";
  }
  return "nothing";
}

absl::Status expected(std::string_view what, const YAML::Node& node) {
  return absl::InvalidArgumentError(absl::StrCat("expected ", sv(what), ", got ", describe(node)));
}

absl::StatusOr<std::string> plain_scalar(const YAML::Node& node, std::string_view what) {
  if (!node.IsScalar() || is_quoted(node)) return expected(what, node);
  return node.Scalar();
}

absl::Status parse_into(const YAML::Node& node, bool& out) {
  PLM_ASSIGN_OR_RETURN(const std::string text, plain_scalar(node, "true or false"));
  if (text == "true" || text == "True" || text == "TRUE") {
    out = true;
  } else if (text == "false" || text == "False" || text == "FALSE") {
    out = false;
  } else {
    return expected("true or false", node);
  }
  return absl::OkStatus();
}

template <typename Int>
  requires std::is_integral_v<Int>
absl::Status parse_into(const YAML::Node& node, Int& out) {
  PLM_ASSIGN_OR_RETURN(const std::string text, plain_scalar(node, "an integer"));
  if (!absl::SimpleAtoi(text, &out)) return expected("an integer", node);
  return absl::OkStatus();
}

absl::Status parse_into(const YAML::Node& node, double& out) {
  PLM_ASSIGN_OR_RETURN(const std::string text, plain_scalar(node, "a number"));
  if (!absl::SimpleAtod(text, &out) || !std::isfinite(out)) return expected("a finite number", node);
  return absl::OkStatus();
}

absl::Status parse_into(const YAML::Node& node, std::string& out) {
  if (!node.IsScalar() || node.Scalar().empty()) return expected("a string", node);
  out = node.Scalar();
  return absl::OkStatus();
}

absl::Status parse_into(const YAML::Node& node, std::filesystem::path& out) {
  if (!node.IsScalar() || node.Scalar().empty()) return expected("a path", node);
  std::error_code error;
  out = std::filesystem::absolute(node.Scalar(), error).lexically_normal();
  if (error) {
    return absl::InvalidArgumentError(absl::StrCat("cannot make '", node.Scalar(), "' absolute: ", error.message()));
  }
  return absl::OkStatus();
}

absl::Status parse_into(const YAML::Node& node, std::array<double, 2>& out) {
  if (!node.IsSequence() || node.size() != 2) return expected("a list of 2 numbers", node);
  for (size_t i = 0; i < 2; ++i) PLM_RETURN_IF_ERROR(parse_into(node[i], out[i]));
  return absl::OkStatus();
}

template <typename T>
absl::Status parse_into(const YAML::Node& node, std::vector<T>& out) {
  if (!node.IsSequence()) return expected("a list", node);
  std::vector<T> values(node.size());
  for (size_t i = 0; i < node.size(); ++i) PLM_RETURN_IF_ERROR(parse_into(node[i], values[i]));
  out = std::move(values);
  return absl::OkStatus();
}

template <typename T>
absl::Status parse_into(const YAML::Node& node, std::optional<T>& out) {
  T value{};
  PLM_RETURN_IF_ERROR(parse_into(node, value));
  out = value;
  return absl::OkStatus();
}

// Enums: the value whose text (from `text_of`) equals the scalar.
template <typename E>
absl::Status parse_enum(const YAML::Node& node, E& out, std::span<const E> values,
                        std::string_view (*text_of)(E)) {
  std::vector<std::string> names;
  for (E value : values) names.emplace_back(text_of(value));
  const std::string choices = absl::StrCat("one of ", absl::StrJoin(names, " | "));
  PLM_ASSIGN_OR_RETURN(const std::string text, plain_scalar(node, choices));
  for (E value : values) {
    if (text_of(value) == text) {
      out = value;
      return absl::OkStatus();
    }
  }
  return expected(choices, node);
}

std::string_view device_text(DeviceType device) {
  switch (device) {
    case DeviceType::kCpu: return "cpu";
    case DeviceType::kCuda: return "cuda";
  }
  PLM_CHECK(false) << "unhandled DeviceType " << static_cast<int>(device);
  return {};
}

constexpr LabelMode kLabelModes[] = {LabelMode::kAssistant, LabelMode::kAllButMedia};
constexpr Recompute kRecomputes[] = {Recompute::kNone, Recompute::kSelective, Recompute::kFull};
constexpr ScheduleName kScheduleNames[] = {ScheduleName::kConstant, ScheduleName::kCosine, ScheduleName::kLinear,
                                           ScheduleName::kWsd};
constexpr DeviceType kDevices[] = {DeviceType::kCpu, DeviceType::kCuda};
constexpr DType kComputeDTypes[] = {DType::kF32, DType::kBF16};
constexpr ExportDType kExportDTypes[] = {ExportDType::kAuto, ExportDType::kBF16, ExportDType::kF16, ExportDType::kF32};

absl::Status parse_into(const YAML::Node& node, LabelMode& out) {
  return parse_enum<LabelMode>(node, out, kLabelModes,
                               [](LabelMode mode) { return std::string_view(data::label_mode_name(mode)); });
}
absl::Status parse_into(const YAML::Node& node, Recompute& out) {
  return parse_enum<Recompute>(node, out, kRecomputes, recompute_text);
}
absl::Status parse_into(const YAML::Node& node, ScheduleName& out) {
  return parse_enum<ScheduleName>(node, out, kScheduleNames, schedule_name_text);
}
absl::Status parse_into(const YAML::Node& node, DeviceType& out) {
  return parse_enum<DeviceType>(node, out, kDevices, device_text);
}
absl::Status parse_into(const YAML::Node& node, DType& out) {
  return parse_enum<DType>(node, out, kComputeDTypes, dtype_name);
}
absl::Status parse_into(const YAML::Node& node, ExportDType& out) {
  return parse_enum<ExportDType>(node, out, kExportDTypes, export_dtype_text);
}

// ---- The key table: every key the config accepts, bound to its field. ----

struct Field {
  std::string_view key;
  std::function<absl::Status(const YAML::Node&, TrainConfig&)> parse;
};

template <typename Member>
Field field(std::string_view key, Member member) {
  return {key, [member](const YAML::Node& node, TrainConfig& c) { return parse_into(node, member(c)); }};
}

const std::vector<Field>& fields() {
  using C = TrainConfig;
  static const std::vector<Field> table = {
      field("model", [](C& c) -> auto& { return c.model; }),
      field("data.train", [](C& c) -> auto& { return c.data.train; }),
      field("data.shuffle", [](C& c) -> auto& { return c.data.shuffle; }),
      field("data.num_frames", [](C& c) -> auto& { return c.data.num_frames; }),
      field("data.labels", [](C& c) -> auto& { return c.data.labels; }),
      field("seed", [](C& c) -> auto& { return c.seed; }),
      field("steps", [](C& c) -> auto& { return c.steps; }),
      field("batch.global", [](C& c) -> auto& { return c.batch.global; }),
      field("batch.micro", [](C& c) -> auto& { return c.batch.micro; }),
      field("optimizer.lr", [](C& c) -> auto& { return c.optimizer.lr; }),
      field("optimizer.betas", [](C& c) -> auto& { return c.optimizer.betas; }),
      field("optimizer.eps", [](C& c) -> auto& { return c.optimizer.eps; }),
      field("optimizer.weight_decay", [](C& c) -> auto& { return c.optimizer.weight_decay; }),
      field("optimizer.grad_clip", [](C& c) -> auto& { return c.optimizer.grad_clip; }),
      field("schedule.name", [](C& c) -> auto& { return c.schedule.name; }),
      field("schedule.warmup_steps", [](C& c) -> auto& { return c.schedule.warmup_steps; }),
      field("schedule.min_lr", [](C& c) -> auto& { return c.schedule.min_lr; }),
      field("schedule.decay_steps", [](C& c) -> auto& { return c.schedule.decay_steps; }),
      field("layout.tp", [](C& c) -> auto& { return c.layout.tp; }),
      field("layout.pp", [](C& c) -> auto& { return c.layout.pp; }),
      field("layout.pp_media_fraction", [](C& c) -> auto& { return c.layout.pp_media_fraction; }),
      field("layout.pp_layers", [](C& c) -> auto& { return c.layout.pp_layers; }),
      field("layout.dp", [](C& c) -> auto& { return c.layout.dp; }),
      field("layout.zero", [](C& c) -> auto& { return c.layout.zero; }),
      field("freeze.vision", [](C& c) -> auto& { return c.freeze.vision; }),
      field("freeze.projector", [](C& c) -> auto& { return c.freeze.projector; }),
      field("freeze.llm", [](C& c) -> auto& { return c.freeze.llm; }),
      field("lora.rank", [](C& c) -> auto& { return c.lora.rank; }),
      field("lora.alpha", [](C& c) -> auto& { return c.lora.alpha; }),
      field("lora.dropout", [](C& c) -> auto& { return c.lora.dropout; }),
      field("lora.targets", [](C& c) -> auto& { return c.lora.targets; }),
      field("lora.dora", [](C& c) -> auto& { return c.lora.dora; }),
      field("lora.init", [](C& c) -> auto& { return c.lora.init; }),
      field("lora.merge", [](C& c) -> auto& { return c.lora.merge; }),
      field("device", [](C& c) -> auto& { return c.device; }),
      field("output_dir", [](C& c) -> auto& { return c.output_dir; }),
      field("checkpoint.every", [](C& c) -> auto& { return c.checkpoint.every; }),
      field("checkpoint.keep", [](C& c) -> auto& { return c.checkpoint.keep; }),
      field("log_every", [](C& c) -> auto& { return c.log_every; }),
      field("resume", [](C& c) -> auto& { return c.resume; }),
      field("recompute", [](C& c) -> auto& { return c.recompute; }),
      field("dtype", [](C& c) -> auto& { return c.dtype; }),
      field("export_dtype", [](C& c) -> auto& { return c.export_dtype; }),
  };
  return table;
}

const Field* find_field(std::string_view key) {
  for (const Field& f : fields()) {
    if (f.key == key) return &f;
  }
  return nullptr;
}

// "data" for "data.train"; empty for a top-level key.
std::string_view section_of(std::string_view key) {
  const size_t dot = key.find('.');
  return dot == std::string_view::npos ? std::string_view() : key.substr(0, dot);
}

bool is_section(std::string_view name) {
  return std::any_of(fields().begin(), fields().end(), [&](const Field& f) { return section_of(f.key) == name; });
}

// Lists the keys of `key`'s section when that section exists, else the top-level names ("data.*", "seed").
absl::Status unknown_key(std::string_view where, std::string_view key) {
  const std::string_view section = section_of(key);
  const bool known_section = !section.empty() && is_section(section);
  std::vector<std::string> known;
  for (const Field& f : fields()) {
    const std::string_view f_section = section_of(f.key);
    const std::string name = known_section     ? std::string(f_section == section ? f.key : "")
                             : f_section.empty() ? std::string(f.key)
                                                 : absl::StrCat(sv(f_section), ".*");
    if (!name.empty() && std::find(known.begin(), known.end(), name) == known.end()) known.push_back(name);
  }
  return absl::InvalidArgumentError(absl::StrCat(sv(where), ": unknown key '", sv(key), "' (known: ",
                                                 absl::StrJoin(known, ", "), ")"));
}

// A value and where it came from.
struct Entry {
  YAML::Node value;
  std::string origin;
};

std::string line_origin(const std::string& source, const YAML::Node& node) {
  const YAML::Mark mark = node.Mark();
  return mark.is_null() ? source : absl::StrCat(source, ":", mark.line + 1);
}

// The file's keys, flattened to "section.key", each checked against the table.
absl::Status collect_file_entries(const YAML::Node& root, const std::string& source,
                                  std::map<std::string, Entry>& entries) {
  if (root.IsNull()) return absl::OkStatus();
  if (!root.IsMap()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": expected a mapping of keys, got ", describe(root)));
  }
  for (const auto& item : root) {
    const std::string name = item.first.Scalar();
    const std::string origin = line_origin(source, item.first);
    if (is_section(name)) {
      if (item.second.IsNull()) continue;
      if (!item.second.IsMap()) {
        return absl::InvalidArgumentError(
            absl::StrCat(origin, ": ", name, ": expected a mapping of ", name, ".* keys, got ", describe(item.second)));
      }
      for (const auto& sub : item.second) {
        const std::string key = absl::StrCat(name, ".", sub.first.Scalar());
        const std::string sub_origin = line_origin(source, sub.first);
        if (find_field(key) == nullptr) return unknown_key(sub_origin, key);
        entries[key] = {sub.second, sub_origin};
      }
    } else {
      if (find_field(name) == nullptr) return unknown_key(origin, name);
      entries[name] = {item.second, origin};
    }
  }
  return absl::OkStatus();
}

absl::Status apply_override(const std::string& text, std::map<std::string, Entry>& entries) {
  const std::string origin = absl::StrCat("override '", text, "'");
  const size_t equals = text.find('=');
  if (equals == std::string::npos || equals == 0) {
    return absl::InvalidArgumentError(absl::StrCat(origin, ": expected key.sub=value"));
  }
  const std::string key = text.substr(0, equals);
  if (find_field(key) == nullptr) return unknown_key(origin, key);
  try {
    entries[key] = {YAML::Load(text.substr(equals + 1)), origin};
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(origin, ": ", key, ": malformed YAML value: ", e.msg));
  }
  return absl::OkStatus();
}

// ---- Range checks after parsing; each names its key and where the value came from. ----

class Checker {
 public:
  explicit Checker(const TrainConfig& config) : config_(config) {}

  absl::Status fail(std::string_view key, std::string_view problem) const {
    return absl::InvalidArgumentError(absl::StrCat(config_.where(key), ": ", sv(key), ": ", sv(problem)));
  }
  template <typename T>
  absl::Status at_least(std::string_view key, T value, T minimum) const {
    if (value >= minimum) return absl::OkStatus();
    return fail(key, absl::StrCat(value, " must be at least ", minimum));
  }
  absl::Status in_range(std::string_view key, double value, double lo, double hi, std::string_view range) const {
    if (value >= lo && value <= hi) return absl::OkStatus();
    return fail(key, absl::StrCat(value, " must be in ", sv(range)));
  }
  // A key without a default: the message names the file, since the value is nowhere.
  absl::Status required(std::string_view key, bool present, std::string_view what) const {
    if (present) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(config_.source, ": ", sv(key), " is required (", sv(what), ")"));
  }

 private:
  const TrainConfig& config_;
};

absl::Status check_ranges(const TrainConfig& c) {
  const Checker check(c);
  PLM_RETURN_IF_ERROR(check.required("model", !c.model.empty(), "a Hugging Face model directory"));
  PLM_RETURN_IF_ERROR(check.required("data.train", !c.data.train.empty(), "an SFT JSONL or packed HDF5 file"));
  PLM_RETURN_IF_ERROR(check.required("output_dir", !c.output_dir.empty(), "where checkpoints and metrics go"));
  PLM_RETURN_IF_ERROR(check.required("steps", c.origin.contains("steps"), "the number of optimizer steps"));
  PLM_RETURN_IF_ERROR(check.at_least<int64_t>("steps", c.steps, 1));
  if (c.data.num_frames) PLM_RETURN_IF_ERROR(check.at_least("data.num_frames", *c.data.num_frames, 1));
  if (c.batch.global) PLM_RETURN_IF_ERROR(check.at_least("batch.global", *c.batch.global, 1));
  PLM_RETURN_IF_ERROR(check.at_least("batch.micro", c.batch.micro, 1));

  if (c.optimizer.lr <= 0.0) return check.fail("optimizer.lr", absl::StrCat(c.optimizer.lr, " must be > 0"));
  for (double beta : c.optimizer.betas) {
    if (beta < 0.0 || beta >= 1.0) return check.fail("optimizer.betas", absl::StrCat(beta, " must be in [0, 1)"));
  }
  if (c.optimizer.eps <= 0.0) return check.fail("optimizer.eps", absl::StrCat(c.optimizer.eps, " must be > 0"));
  PLM_RETURN_IF_ERROR(check.at_least("optimizer.weight_decay", c.optimizer.weight_decay, 0.0));
  PLM_RETURN_IF_ERROR(check.at_least("optimizer.grad_clip", c.optimizer.grad_clip, 0.0));

  PLM_RETURN_IF_ERROR(check.in_range("schedule.warmup_steps", static_cast<double>(c.schedule.warmup_steps), 0,
                                     static_cast<double>(c.steps), absl::StrCat("[0, steps = ", c.steps, "]")));
  PLM_RETURN_IF_ERROR(check.in_range("schedule.min_lr", c.schedule.min_lr, 0, c.optimizer.lr,
                                     absl::StrCat("[0, optimizer.lr = ", c.optimizer.lr, "]")));
  if (c.schedule.name == ScheduleName::kWsd) {
    PLM_RETURN_IF_ERROR(check.required("schedule.decay_steps", c.schedule.decay_steps.has_value(),
                                       "for schedule.name wsd: the length of the final decay phase"));
    const int64_t room = c.steps - c.schedule.warmup_steps;
    if (*c.schedule.decay_steps < 1 || *c.schedule.decay_steps > room) {
      return check.fail("schedule.decay_steps",
                        absl::StrCat(*c.schedule.decay_steps, " must be in [1, steps - schedule.warmup_steps = ",
                                     c.steps, " - ", c.schedule.warmup_steps, " = ", room, "]"));
    }
  } else if (c.schedule.decay_steps) {
    return check.fail("schedule.decay_steps", absl::StrCat("applies only to schedule.name wsd, not ",
                                                           sv(schedule_name_text(c.schedule.name))));
  }

  PLM_RETURN_IF_ERROR(check.at_least("layout.tp", c.layout.tp, 1));
  PLM_RETURN_IF_ERROR(check.at_least("layout.pp", c.layout.pp, 1));
  PLM_RETURN_IF_ERROR(check.in_range("layout.pp_media_fraction", c.layout.pp_media_fraction, 0.0, 1.0, "[0, 1]"));
  if (!c.layout.pp_layers.empty()) {
    if (static_cast<int>(c.layout.pp_layers.size()) != c.layout.pp) {
      return check.fail("layout.pp_layers", absl::StrCat(c.layout.pp_layers.size(), " entries for layout.pp ",
                                                         c.layout.pp, " stages (one count per stage)"));
    }
    for (const int layers : c.layout.pp_layers) PLM_RETURN_IF_ERROR(check.at_least("layout.pp_layers", layers, 0));
  }
  if (c.layout.dp) PLM_RETURN_IF_ERROR(check.at_least("layout.dp", *c.layout.dp, 1));
  if (c.layout.zero < 0 || c.layout.zero > 2) {
    return check.fail("layout.zero", absl::StrCat(c.layout.zero, " must be 0, 1 or 2"));
  }

  PLM_RETURN_IF_ERROR(check.at_least("lora.rank", c.lora.rank, 0));
  if (c.lora.alpha <= 0.0) return check.fail("lora.alpha", absl::StrCat(c.lora.alpha, " must be > 0"));
  if (c.lora.dropout < 0.0 || c.lora.dropout >= 1.0) {
    return check.fail("lora.dropout", absl::StrCat(c.lora.dropout, " must be in [0, 1)"));
  }
  if (c.lora.targets.empty()) return check.fail("lora.targets", "must name at least one module");
  std::set<std::string> seen_targets;
  for (const std::string& target : c.lora.targets) {
    if (std::find(kLoraTargetNames.begin(), kLoraTargetNames.end(), target) == kLoraTargetNames.end()) {
      const std::vector<std::string> known(kLoraTargetNames.begin(), kLoraTargetNames.end());
      return check.fail("lora.targets",
                        absl::StrCat("unknown module '", target, "' (known: ", absl::StrJoin(known, ", "), ")"));
    }
    if (!seen_targets.insert(target).second) {
      return check.fail("lora.targets", absl::StrCat("'", target, "' appears twice"));
    }
  }
  if (c.lora.dora && c.lora.rank == 0) return check.fail("lora.dora", "needs lora.rank > 0");
  if (!c.lora.init.empty() && c.lora.rank == 0) return check.fail("lora.init", "needs lora.rank > 0");
  if (c.lora.merge && c.lora.rank == 0) return check.fail("lora.merge", "needs lora.rank > 0");
  if (c.freeze.vision && c.freeze.projector && c.freeze.llm && c.lora.rank == 0) {
    return check.fail("freeze.llm", "freeze.vision, freeze.projector and freeze.llm are all true and lora.rank is 0: "
                                    "nothing would be trained");
  }

  PLM_RETURN_IF_ERROR(check.at_least<int64_t>("checkpoint.every", c.checkpoint.every, 0));
  PLM_RETURN_IF_ERROR(check.at_least("checkpoint.keep", c.checkpoint.keep, 0));
  PLM_RETURN_IF_ERROR(check.at_least<int64_t>("log_every", c.log_every, 1));
  return absl::OkStatus();
}

}  // namespace


std::string_view export_dtype_text(ExportDType dtype) {
  switch (dtype) {
    case ExportDType::kAuto: return "auto";
    case ExportDType::kBF16: return "bf16";
    case ExportDType::kF16: return "f16";
    case ExportDType::kF32: return "f32";
  }
  PLM_CHECK(false) << "unhandled ExportDType " << static_cast<int>(dtype);
  return {};
}

std::optional<DType> export_dtype_value(ExportDType dtype) {
  switch (dtype) {
    case ExportDType::kAuto: return std::nullopt;
    case ExportDType::kBF16: return DType::kBF16;
    case ExportDType::kF16: return DType::kF16;
    case ExportDType::kF32: return DType::kF32;
  }
  PLM_CHECK(false) << "unhandled ExportDType " << static_cast<int>(dtype);
  return std::nullopt;
}

std::string TrainConfig::where(std::string_view key) const {
  const auto it = origin.find(std::string(key));
  return it != origin.end() ? it->second : absl::StrCat(source, " (default)");
}

LrSchedule TrainConfig::lr_schedule() const {
  return {.name = schedule.name,
          .lr = optimizer.lr,
          .min_lr = schedule.min_lr,
          .warmup_steps = schedule.warmup_steps,
          .total_steps = steps,
          .decay_steps = schedule.decay_steps.value_or(0)};
}

absl::StatusOr<TrainConfig> parse_train_config_text(std::string_view yaml, std::string source,
                                                    const std::vector<std::string>& overrides) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(source, ":", e.mark.line + 1, ": malformed YAML: ", e.msg));
  }
  std::map<std::string, Entry> entries;
  PLM_RETURN_IF_ERROR(collect_file_entries(root, source, entries));
  for (const std::string& text : overrides) PLM_RETURN_IF_ERROR(apply_override(text, entries));

  TrainConfig config;
  config.source = std::move(source);
  for (const auto& [key, entry] : entries) {
    if (entry.value.IsNull()) continue;  // `key:` with no value, or `key=` on the command line: the default
    if (absl::Status status = find_field(key)->parse(entry.value, config); !status.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(entry.origin, ": ", key, ": ", status.message()));
    }
    config.origin[key] = entry.origin;
  }
  PLM_RETURN_IF_ERROR(check_ranges(config));
  return config;
}

absl::StatusOr<TrainConfig> parse_train_config(const std::filesystem::path& yaml_path,
                                               const std::vector<std::string>& overrides) {
  PLM_ASSIGN_OR_RETURN(const std::string text, data::read_file(yaml_path));
  return parse_train_config_text(text, yaml_path.string(), overrides);
}

absl::StatusOr<TrainLayout> validate_layout(const TrainConfig& config, int world_size) {
  PLM_CHECK_GE(world_size, 1);
  const Checker check(config);
  const TrainConfig::Layout& layout = config.layout;
  if ((layout.tp > 1 || layout.pp > 1) && config.lora.rank > 0) {
    return check.fail("lora.rank", absl::StrCat(config.lora.rank, ": LoRA trains on layout.tp 1 and layout.pp 1 only, "
                                                "not layout.tp ", layout.tp, " x layout.pp ", layout.pp));
  }
  const int model_ranks = layout.tp * layout.pp;
  int dp = 0;
  if (layout.dp) {
    dp = *layout.dp;
    if (model_ranks * dp != world_size) {
      return check.fail("layout.dp", absl::StrCat("layout.tp(", layout.tp, ") * layout.pp(", layout.pp,
                                                  ") * layout.dp(", dp, ") = ", model_ranks * dp,
                                                  " != world size (", world_size, ")"));
    }
  } else {
    if (world_size % model_ranks != 0) {
      return check.fail("layout.tp", absl::StrCat("world size (", world_size, ") is not divisible by layout.tp(",
                                                  layout.tp, ") * layout.pp(", layout.pp, ") = ", model_ranks));
    }
    dp = world_size / model_ranks;
  }
  const int micro = config.batch.micro;
  const int global = config.batch.global.value_or(micro * dp);
  if (global % (micro * dp) != 0) {
    return check.fail("batch.global", absl::StrCat(global, " is not divisible by batch.micro(", micro, ") * dp(",
                                                   dp, ") = ", micro * dp));
  }
  return TrainLayout{.dims = {.tp = layout.tp, .pp = layout.pp, .dp = dp},
                     .zero = layout.zero,
                     .global_batch = global,
                     .micro_batch = micro,
                     .accumulation_steps = global / (micro * dp)};
}

}  // namespace plm::trainer
