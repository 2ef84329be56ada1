#include "demo/captioning.h"

#include <chrono>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "caption/caption_record.h"
#include "caption/part_file.h"
#include "core/status_macros.h"
#include "demo/child_process.h"

namespace plm::demo {
namespace {

namespace fs = std::filesystem;

constexpr auto kPollInterval = std::chrono::milliseconds(250);

std::string id_of(const data::SynthExample& example, const fs::path& data_dir) {
  return example.media.lexically_relative(data_dir).string();
}

// The lines plm caption has journalled so far (its single replica's part).
int64_t captions_so_far(const fs::path& out) {
  int64_t lines = 0;
  const absl::StatusOr<int64_t> torn = caption::scan_part(
      caption::part_path(out, 0), false, [&lines](caption::CaptionRecord&&, const caption::LineSpan&) { ++lines; });
  return torn.ok() ? lines : 0;
}

}  // namespace

absl::Status write_caption_inputs(const std::vector<data::SynthExample>& examples, const fs::path& data_dir,
                                  const fs::path& list) {
  std::ofstream out(list, std::ios::trunc);
  for (const data::SynthExample& e : examples) {
    out << nlohmann::json{{"id", id_of(e, data_dir)}, {"path", fs::absolute(e.media).string()}, {"prompt", e.question}}
               .dump()
        << "\n";
  }
  out.close();
  if (!out) return absl::InternalError(absl::StrCat(list.string(), ": write failed"));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<Prediction>> read_captions(const fs::path& captions,
                                                      const std::vector<data::SynthExample>& examples,
                                                      const fs::path& data_dir) {
  std::ifstream in(captions);
  if (!in) return absl::NotFoundError(absl::StrCat(captions.string(), ": cannot open"));
  absl::flat_hash_map<std::string, caption::CaptionRecord> records;
  int64_t line_number = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_number;
    absl::StatusOr<caption::CaptionRecord> record = caption::parse_record_line(line);
    if (!record.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(captions.string(), ":", line_number, ": ", record.status().message()));
    }
    records[record->id] = *std::move(record);
  }
  std::vector<Prediction> predictions;
  for (const data::SynthExample& e : examples) {
    const std::string id = id_of(e, data_dir);
    const auto it = records.find(id);
    if (it == records.end()) return absl::NotFoundError(absl::StrCat(captions.string(), ": no line for ", id));
    if (!it->second.ok()) {
      return absl::InternalError(absl::StrCat(captions.string(), ": ", id, " was not captioned: ", *it->second.error));
    }
    predictions.push_back({e, it->second.caption, data::parse_attributes(it->second.caption)});
  }
  return predictions;
}

absl::StatusOr<std::vector<Prediction>> caption_examples(const CaptionStep& step,
                                                         const std::vector<data::SynthExample>& examples,
                                                         const std::function<void(int64_t)>& progress) {
  const std::string system = examples.empty() ? std::string() : examples.front().system;
  for (const data::SynthExample& e : examples) {
    if (e.system != system) {
      return absl::InvalidArgumentError(absl::StrCat(e.media.string(), ": its system turn \"", e.system,
                                                     "\" differs from the others' (\"", system,
                                                     "\"); plm caption asks every item under one"));
    }
  }
  std::error_code error;
  fs::create_directories(step.out_dir, error);
  if (error) return absl::InternalError(absl::StrCat(step.out_dir.string(), ": cannot create: ", error.message()));
  const fs::path inputs = step.out_dir / "inputs.jsonl";
  const fs::path captions = step.out_dir / "captions.jsonl";
  PLM_RETURN_IF_ERROR(write_caption_inputs(examples, step.data_dir, inputs));
  std::vector<std::string> argv = {step.executable.string(),
                                   "caption",
                                   "--model",
                                   step.model_dir.string(),
                                   "--inputs",
                                   inputs.string(),
                                   "--out",
                                   captions.string(),
                                   "--num-frames",
                                   std::to_string(step.num_frames),
                                   "--max-new-tokens",
                                   std::to_string(kMaxAnswerTokens),
                                   "--kv-cache-bytes",
                                   "256M"};
  if (!system.empty()) {
    argv.push_back("--system");
    argv.push_back(system);
  }
  PLM_ASSIGN_OR_RETURN(const std::unique_ptr<ChildProcess> child, ChildProcess::start(argv, {}, step.log));
  while (!child->poll()) {
    std::this_thread::sleep_for(kPollInterval);
    if (progress) progress(captions_so_far(captions));
  }
  const int status = child->wait();
  if (status != 0) {
    return absl::InternalError(absl::StrCat("plm caption exited with status ", status, "; the end of ",
                                            step.log.string(), ":\n", log_tail(step.log)));
  }
  if (progress) progress(captions_so_far(captions));
  return read_captions(captions, examples, step.data_dir);
}

}  // namespace plm::demo
