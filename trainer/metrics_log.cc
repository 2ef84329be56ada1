#include "trainer/metrics_log.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "core/check.h"
#include "core/status_macros.h"
#include "data/read_file.h"
#include "core/durable_file.h"
#include "trainer/metrics_plot.h"

namespace plm::trainer {
namespace {

nlohmann::json to_json(const StepMetrics& m) {
  nlohmann::json line = {{"step", m.step},
                         {"loss", m.loss},
                         {"grad_norm", m.grad_norm},
                         {"lr", m.lr},
                         {"tokens", m.tokens},
                         {"tokens_per_s", m.tokens_per_s},
                         {"mfu", m.mfu},
                         {"elapsed_s", m.elapsed_s}};
  if (m.stage0.has_value()) {
    const auto value = [](const std::optional<double>& v) { return v ? nlohmann::json(*v) : nlohmann::json(); };
    line["stage0_media_s"] = value(m.stage0->media_s);
    line["stage0_text_s"] = value(m.stage0->text_s);
    line["stage0_transfer_s"] = m.stage0->transfer_s;
  }
  return line;
}

double number_or_nan(const nlohmann::json& line, const char* key) {
  const auto it = line.find(key);
  return it != line.end() && it->is_number() ? it->get<double>() : std::numeric_limits<double>::quiet_NaN();
}

// A line this log wrote: a JSON object with an integer step >= 1; nullopt for anything else (a torn write).
std::optional<StepMetrics> parse_line(std::string_view text) {
  const nlohmann::json line = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!line.is_object()) return std::nullopt;
  const auto step = line.find("step");
  if (step == line.end() || !step->is_number_integer() || step->get<int64_t>() < 1) return std::nullopt;
  const auto tokens = line.find("tokens");
  return StepMetrics{.step = step->get<int64_t>(),
                     .loss = number_or_nan(line, "loss"),
                     .grad_norm = number_or_nan(line, "grad_norm"),
                     .lr = number_or_nan(line, "lr"),
                     .tokens = tokens != line.end() && tokens->is_number_integer() ? tokens->get<int64_t>() : 0,
                     .tokens_per_s = number_or_nan(line, "tokens_per_s"),
                     .mfu = number_or_nan(line, "mfu"),
                     .elapsed_s = number_or_nan(line, "elapsed_s")};
}

// Keeps the complete lines with step <= resumed_step; rewrites the file atomically if that drops anything.
absl::StatusOr<std::vector<StepMetrics>> keep_lines_up_to(const std::filesystem::path& path, int64_t resumed_step) {
  std::error_code error;
  if (!std::filesystem::exists(path, error)) return std::vector<StepMetrics>();
  PLM_ASSIGN_OR_RETURN(const std::string text, data::read_file(path));
  std::vector<StepMetrics> kept;
  std::string kept_text;
  bool dropped = false;
  size_t begin = 0;
  while (begin < text.size()) {
    const size_t end = text.find('\n', begin);
    if (end == std::string::npos) {  // no newline: the write of this line was cut short
      dropped = true;
      break;
    }
    const std::string_view line(text.data() + begin, end - begin);
    const std::optional<StepMetrics> metrics = parse_line(line);
    if (metrics && metrics->step <= resumed_step && (kept.empty() || metrics->step > kept.back().step)) {
      kept.push_back(*metrics);
      kept_text.append(line).push_back('\n');
    } else {
      dropped = true;
    }
    begin = end + 1;
  }
  if (dropped) PLM_RETURN_IF_ERROR(write_file_durably(path, kept_text));
  return kept;
}

}  // namespace

absl::StatusOr<std::unique_ptr<MetricsLog>> MetricsLog::open(const std::filesystem::path& output_dir,
                                                             int64_t resumed_step) {
  PLM_CHECK_GE(resumed_step, 0);
  std::error_code error;
  std::filesystem::create_directories(output_dir, error);
  if (error) return absl::InternalError(absl::StrCat(output_dir.string(), ": cannot create: ", error.message()));
  const std::filesystem::path jsonl_path = output_dir / "metrics.jsonl";
  PLM_ASSIGN_OR_RETURN(std::vector<StepMetrics> history, keep_lines_up_to(jsonl_path, resumed_step));
  PLM_ASSIGN_OR_RETURN(std::unique_ptr<TensorBoardWriter> tensorboard,
                       TensorBoardWriter::open(output_dir / "tb", resumed_step + 1));
  std::FILE* jsonl = std::fopen(jsonl_path.c_str(), "ab");
  if (jsonl == nullptr) {
    return absl::InternalError(absl::StrCat(jsonl_path.string(), ": cannot open: ", std::strerror(errno)));
  }
  return std::unique_ptr<MetricsLog>(
      new MetricsLog(output_dir, std::move(history), jsonl, std::move(tensorboard)));
}

MetricsLog::MetricsLog(std::filesystem::path output_dir, std::vector<StepMetrics> history, std::FILE* jsonl,
                       std::unique_ptr<TensorBoardWriter> tensorboard)
    : output_dir_(std::move(output_dir)),
      jsonl_path_(output_dir_ / "metrics.jsonl"),
      history_(std::move(history)),
      jsonl_(jsonl),
      tensorboard_(std::move(tensorboard)) {}

MetricsLog::~MetricsLog() { std::fclose(jsonl_); }

absl::Status MetricsLog::append(const StepMetrics& m) {
  if (!history_.empty()) PLM_CHECK_GT(m.step, history_.back().step) << "metrics steps must increase";
  const std::string line = to_json(m).dump() + "\n";
  if (std::fwrite(line.data(), 1, line.size(), jsonl_) != line.size() || std::fflush(jsonl_) != 0) {
    return absl::InternalError(absl::StrCat(jsonl_path_.string(), ": write failed: ", std::strerror(errno)));
  }
  PLM_RETURN_IF_ERROR(tensorboard_->add_scalars(
      m.step, {{"train/loss", static_cast<float>(m.loss)},
               {"train/grad_norm", static_cast<float>(m.grad_norm)},
               {"train/lr", static_cast<float>(m.lr)},
               {"train/tokens", static_cast<float>(m.tokens)},
               {"train/tokens_per_s", static_cast<float>(m.tokens_per_s)},
               {"train/mfu", static_cast<float>(m.mfu)}}));
  history_.push_back(m);
  return absl::OkStatus();
}

absl::Status MetricsLog::write_plot() const { return write_metrics_png(history_, output_dir_ / "metrics.png"); }

absl::StatusOr<std::vector<StepMetrics>> read_metrics_jsonl(const std::filesystem::path& path) {
  PLM_ASSIGN_OR_RETURN(const std::string text, data::read_file(path));
  std::vector<StepMetrics> history;
  size_t begin = 0;
  for (int64_t number = 1; begin < text.size(); ++number) {
    const size_t end = text.find('\n', begin);
    if (end == std::string::npos) break;  // a line still being written
    const std::string_view line(text.data() + begin, end - begin);
    begin = end + 1;
    if (line.empty()) continue;
    const std::optional<StepMetrics> metrics = parse_line(line);
    if (!metrics) {
      return absl::InvalidArgumentError(
          absl::StrCat(path.string(), ":", number, ": not a metrics line (a JSON object with an integer step >= 1)"));
    }
    history.push_back(*metrics);
  }
  if (history.empty()) return absl::InvalidArgumentError(absl::StrCat(path.string(), ": no steps"));
  return history;
}

}  // namespace plm::trainer
