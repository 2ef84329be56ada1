#include "trainer/checkpoint_io.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <limits>
#include <system_error>
#include <tuple>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/check.h"
#include "core/durable_file.h"
#include "core/status_macros.h"
#include "model/json_fields.h"

namespace plm::trainer {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kStepPrefix = "step-";
constexpr std::string_view kStagingInfix = ".tmp-";

std::string manifest_name(int rank) { return absl::StrFormat("manifest-rank%05d.json", rank); }

fs::path staging_dir(const fs::path& output_dir, int64_t step, int64_t writer_pid) {
  return checkpoints_dir(output_dir) / absl::StrCat(step_dir_name(step), std::string(kStagingInfix), writer_pid);
}

std::optional<int64_t> parse_digits(std::string_view text) {
  int64_t value = 0;
  if (text.empty() || !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
      !absl::SimpleAtoi(absl::string_view(text.data(), text.size()), &value)) {
    return std::nullopt;
  }
  return value;
}

// "step-00000100" -> 100.
std::optional<int64_t> parse_step_dir(std::string_view name) {
  if (!name.starts_with(kStepPrefix)) return std::nullopt;
  return parse_digits(name.substr(kStepPrefix.size()));
}

// "step-00000100.tmp-4242" -> 4242.
std::optional<int64_t> parse_staging_pid(std::string_view name) {
  const size_t infix = name.find(kStagingInfix);
  if (infix == std::string_view::npos || !parse_step_dir(name.substr(0, infix))) return std::nullopt;
  return parse_digits(name.substr(infix + kStagingInfix.size()));
}

bool is_plain_file_name(std::string_view name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string_view::npos &&
         name != kCompleteMarker;
}

nlohmann::json files_json(const std::map<std::string, FileDigest>& files) {
  nlohmann::json json = nlohmann::json::object();
  for (const auto& [name, digest] : files) json[name] = {{"bytes", digest.bytes}, {"crc32", digest.crc32}};
  return json;
}

absl::StatusOr<std::map<std::string, FileDigest>> parse_files(const model::JsonFields& parent) {
  PLM_ASSIGN_OR_RETURN(const std::optional<model::JsonFields> files, parent.optional_object("files"));
  if (!files) return parent.error("files", "is missing (required)");
  std::map<std::string, FileDigest> digests;
  for (const std::string& name : files->keys()) {
    if (!is_plain_file_name(name)) return files->error(name, "is not a plain file name");
    PLM_ASSIGN_OR_RETURN(const std::optional<model::JsonFields> entry, files->optional_object(name));
    if (!entry) return files->error(name, "is missing (required)");
    PLM_ASSIGN_OR_RETURN(const int64_t bytes, entry->required_int("bytes"));
    PLM_ASSIGN_OR_RETURN(const int64_t crc, entry->required_int("crc32"));
    if (bytes < 0) return entry->error("bytes", absl::StrCat("must be >= 0, got ", bytes));
    if (crc < 0 || crc > 0xFFFFFFFFll) return entry->error("crc32", absl::StrCat("is not a CRC-32: ", crc));
    digests[name] = {.bytes = static_cast<uint64_t>(bytes), .crc32 = static_cast<uint32_t>(crc)};
  }
  return digests;
}

absl::StatusOr<model::JsonFields> load_json_object(const fs::path& path, nlohmann::json& storage) {
  PLM_ASSIGN_OR_RETURN(const std::string text, model::read_text_file(path.string()));
  PLM_ASSIGN_OR_RETURN(storage, model::parse_json(text, path.string()));
  return model::JsonFields::of(storage, path.string(), "");
}

// Entries of checkpoints/ (empty when it does not exist).
absl::StatusOr<std::vector<fs::directory_entry>> list_checkpoints_dir(const fs::path& output_dir) {
  const fs::path dir = checkpoints_dir(output_dir);
  std::error_code error;
  if (!fs::exists(dir, error)) return std::vector<fs::directory_entry>();
  std::vector<fs::directory_entry> entries;
  for (fs::directory_iterator it(dir, error), end; !error && it != end; it.increment(error)) {
    entries.push_back(*it);
  }
  if (error) return absl::InternalError(absl::StrCat(dir.string(), ": cannot list: ", error.message()));
  return entries;
}

// Complete-looking directories (step-XXXXXXXX), newest first.
absl::StatusOr<std::vector<std::pair<int64_t, fs::path>>> step_dirs_newest_first(const fs::path& output_dir) {
  PLM_ASSIGN_OR_RETURN(const std::vector<fs::directory_entry> entries, list_checkpoints_dir(output_dir));
  std::vector<std::pair<int64_t, fs::path>> dirs;
  for (const fs::directory_entry& entry : entries) {
    const std::optional<int64_t> step = parse_step_dir(entry.path().filename().string());
    if (step && entry.is_directory()) dirs.emplace_back(*step, entry.path());
  }
  std::sort(dirs.begin(), dirs.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  return dirs;
}

// The marker of `dir`, checked against the step its name says and against the files on disk.
absl::StatusOr<CheckpointMarker> check_step_dir(int64_t step, const fs::path& dir, Verify verify) {
  PLM_ASSIGN_OR_RETURN(CheckpointMarker marker, read_checkpoint_marker(dir));
  if (marker.step != step) {
    return absl::DataLossError(absl::StrCat((dir / kCompleteMarker).string(), ": step ", marker.step,
                                            " does not match the directory name"));
  }
  PLM_RETURN_IF_ERROR(verify_checkpoint_files(dir, marker, verify));
  return marker;
}

// kill(pid, 0) sends nothing; it fails with ESRCH only when no such process exists.
bool process_alive(int64_t pid) {
  if (pid <= 0 || pid > std::numeric_limits<pid_t>::max()) return false;
  return ::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH;
}

}  // namespace

std::string rank_file_name(ShardKind kind, int rank) {
  PLM_CHECK_GE(rank, 0);
  const char* prefix = nullptr;
  switch (kind) {
    case ShardKind::kModel: prefix = "model"; break;
    case ShardKind::kOptimizer: prefix = "optim"; break;
  }
  PLM_CHECK(prefix != nullptr) << "unhandled ShardKind " << static_cast<int>(kind);
  return absl::StrFormat("%s-rank%05d.safetensors", prefix, rank);
}

fs::path checkpoints_dir(const fs::path& output_dir) { return output_dir / "checkpoints"; }

std::string step_dir_name(int64_t step) {
  PLM_CHECK_GE(step, 0);
  return absl::StrFormat("step-%08d", step);
}

absl::StatusOr<CheckpointWriter> CheckpointWriter::begin(const fs::path& output_dir, int64_t step, int rank,
                                                         int64_t writer_pid) {
  PLM_CHECK_GE(rank, 0);
  const fs::path dir = staging_dir(output_dir, step, writer_pid);
  std::error_code error;
  fs::create_directories(dir, error);
  if (error) return absl::InternalError(absl::StrCat(dir.string(), ": cannot create: ", error.message()));
  return CheckpointWriter(dir, rank);
}

absl::Status CheckpointWriter::record(const std::string& file_name) {
  PLM_ASSIGN_OR_RETURN(const FileDigest digest, digest_file(dir_ / file_name));
  files_[file_name] = digest;
  return absl::OkStatus();
}

absl::Status CheckpointWriter::write_tensors(const std::string& file_name,
                                             const std::vector<model::NamedTensor>& tensors,
                                             const std::map<std::string, std::string>& metadata) {
  PLM_CHECK(is_plain_file_name(file_name)) << file_name;
  PLM_RETURN_IF_ERROR(model::write_safetensors((dir_ / file_name).string(), tensors, metadata));
  return record(file_name);
}

absl::Status CheckpointWriter::write_json(const std::string& file_name, const nlohmann::json& value) {
  PLM_CHECK(is_plain_file_name(file_name)) << file_name;
  PLM_RETURN_IF_ERROR(write_file_durably(dir_ / file_name, value.dump(2) + "\n"));
  return record(file_name);
}

absl::Status CheckpointWriter::finish() {
  const nlohmann::json manifest = {{"rank", rank_}, {"files", files_json(files_)}};
  return write_file_durably(dir_ / manifest_name(rank_), manifest.dump(2) + "\n");
}

absl::StatusOr<fs::path> commit_checkpoint(const fs::path& output_dir, int64_t step, int64_t writer_pid,
                                           const CheckpointLayout& layout) {
  const fs::path staging = staging_dir(output_dir, step, writer_pid);
  const fs::path final_dir = checkpoints_dir(output_dir) / step_dir_name(step);
  std::error_code error;
  if (fs::exists(final_dir, error)) {
    return absl::AlreadyExistsError(
        absl::StrCat(final_dir.string(), ": already exists; a checkpoint of a step is written once"));
  }

  std::map<std::string, FileDigest> files;
  for (int rank = 0; rank < layout.world_size(); ++rank) {
    const fs::path manifest_path = staging / manifest_name(rank);
    if (!fs::exists(manifest_path, error)) {
      return absl::FailedPreconditionError(absl::StrCat(manifest_path.string(), ": missing: rank ", rank,
                                                        " did not finish its part of the checkpoint"));
    }
    nlohmann::json storage;
    PLM_ASSIGN_OR_RETURN(const model::JsonFields manifest, load_json_object(manifest_path, storage));
    PLM_ASSIGN_OR_RETURN(const auto rank_files, parse_files(manifest));
    for (const auto& [name, digest] : rank_files) {
      if (!files.emplace(name, digest).second) {
        return absl::FailedPreconditionError(
            absl::StrCat(manifest_path.string(), ": ", name, " was also written by another rank"));
      }
    }
  }

  const nlohmann::json marker = {
      {"step", step},
      {"layout", {{"tp", layout.tp}, {"pp", layout.pp}, {"dp", layout.dp}, {"zero", layout.zero}}},
      {"files", files_json(files)}};
  PLM_RETURN_IF_ERROR(write_file_durably(staging / kCompleteMarker, marker.dump(2) + "\n"));
  // The manifests are folded into COMPLETE; one left behind by a failed remove is harmless (readers go by COMPLETE).
  for (int rank = 0; rank < layout.world_size(); ++rank) fs::remove(staging / manifest_name(rank), error);
  PLM_RETURN_IF_ERROR(fsync_directory(staging));
  PLM_RETURN_IF_ERROR(rename_durably(staging, final_dir));
  return final_dir;
}

absl::Status discard_staging(const fs::path& output_dir, int64_t step, int64_t writer_pid) {
  const fs::path staging = staging_dir(output_dir, step, writer_pid);
  std::error_code error;
  fs::remove_all(staging, error);
  if (error) return absl::InternalError(absl::StrCat(staging.string(), ": cannot remove: ", error.message()));
  return absl::OkStatus();
}

absl::StatusOr<CheckpointMarker> read_checkpoint_marker(const fs::path& dir) {
  nlohmann::json storage;
  PLM_ASSIGN_OR_RETURN(const model::JsonFields json, load_json_object(dir / kCompleteMarker, storage));
  CheckpointMarker marker;
  PLM_ASSIGN_OR_RETURN(marker.step, json.required_int("step"));
  if (marker.step < 0) return json.error("step", absl::StrCat("must be >= 0, got ", marker.step));
  PLM_ASSIGN_OR_RETURN(const std::optional<model::JsonFields> layout, json.optional_object("layout"));
  if (!layout) return json.error("layout", "is missing (required)");
  for (auto [key, field, minimum] : {std::tuple{"tp", &marker.layout.tp, 1}, std::tuple{"pp", &marker.layout.pp, 1},
                                     std::tuple{"dp", &marker.layout.dp, 1}, std::tuple{"zero", &marker.layout.zero, 0}}) {
    PLM_ASSIGN_OR_RETURN(const int64_t value, layout->required_int(key));
    if (value < minimum || value > (1 << 20)) return layout->error(key, absl::StrCat("is out of range: ", value));
    *field = static_cast<int>(value);
  }
  PLM_ASSIGN_OR_RETURN(marker.files, parse_files(json));
  return marker;
}

absl::Status verify_checkpoint_files(const fs::path& dir, const CheckpointMarker& marker, Verify verify) {
  for (const auto& [name, expected] : marker.files) {
    const fs::path path = dir / name;
    std::error_code error;
    const uintmax_t bytes = fs::file_size(path, error);
    if (error) return absl::DataLossError(absl::StrCat(path.string(), ": listed in COMPLETE but ", error.message()));
    if (bytes != expected.bytes) {
      return absl::DataLossError(
          absl::StrCat(path.string(), ": ", bytes, " bytes, COMPLETE records ", expected.bytes));
    }
    if (verify == Verify::kSizesAndCrcs) {
      PLM_ASSIGN_OR_RETURN(const FileDigest actual, digest_file(path));
      if (actual.crc32 != expected.crc32) {
        return absl::DataLossError(absl::StrFormat("%s: CRC-32 %08x, COMPLETE records %08x", path.string(),
                                                   actual.crc32, expected.crc32));
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<CheckpointScan> latest_complete_checkpoint(const fs::path& output_dir, Verify verify) {
  PLM_ASSIGN_OR_RETURN(const auto dirs, step_dirs_newest_first(output_dir));
  CheckpointScan scan;
  for (const auto& [step, dir] : dirs) {
    absl::StatusOr<CheckpointMarker> marker = check_step_dir(step, dir, verify);
    if (marker.ok()) {
      scan.latest = CompleteCheckpoint{dir, *std::move(marker)};
      break;
    }
    scan.ignored.push_back(absl::StrCat(dir.filename().string(), ": ", marker.status().message()));
  }
  return scan;
}

absl::StatusOr<std::vector<fs::path>> prune_checkpoints(const fs::path& output_dir, int keep) {
  PLM_CHECK_GE(keep, 0);
  std::vector<fs::path> doomed;
  if (keep > 0) {
    PLM_ASSIGN_OR_RETURN(const auto dirs, step_dirs_newest_first(output_dir));
    int complete = 0;
    for (const auto& [step, dir] : dirs) {
      if (!check_step_dir(step, dir, Verify::kSizes).ok()) continue;
      if (++complete > keep) doomed.push_back(dir);
    }
  }
  PLM_ASSIGN_OR_RETURN(const std::vector<fs::directory_entry> entries, list_checkpoints_dir(output_dir));
  for (const fs::directory_entry& entry : entries) {
    const std::optional<int64_t> pid = parse_staging_pid(entry.path().filename().string());
    if (pid && *pid != ::getpid() && !process_alive(*pid)) doomed.push_back(entry.path());
  }
  for (const fs::path& dir : doomed) {
    std::error_code error;
    fs::remove_all(dir, error);
    if (error) return absl::InternalError(absl::StrCat(dir.string(), ": cannot remove: ", error.message()));
  }
  if (!doomed.empty()) PLM_RETURN_IF_ERROR(fsync_directory(checkpoints_dir(output_dir)));
  return doomed;
}

}  // namespace plm::trainer
