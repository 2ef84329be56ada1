// The demo's captioning step: `plm caption` over the held-out clips, each asked its question under the data set's
// system turn (the conversation the model was trained on), and the captions read back as predictions, scored like
// the served answers (demo/evaluation.h). The step's files: an input list, plm caption's output (and its part, the
// job's journal, which the progress bar counts) and its log.
#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "data/synthetic_dataset.h"
#include "demo/evaluation.h"

namespace plm::demo {

// One `{"id", "path", "prompt"}` line per example (plm caption's JSONL list): the id is the media path relative to
// `data_dir`, the path is absolute, the prompt is the example's question.
absl::Status write_caption_inputs(const std::vector<data::SynthExample>& examples,
                                  const std::filesystem::path& data_dir, const std::filesystem::path& list);

// plm caption's output as one prediction per example, in the examples' order. An example without a line, or whose
// line is an error, is an error naming the file and the example's id.
absl::StatusOr<std::vector<Prediction>> read_captions(const std::filesystem::path& captions,
                                                      const std::vector<data::SynthExample>& examples,
                                                      const std::filesystem::path& data_dir);

struct CaptionStep {
  std::filesystem::path executable;  // the running plm
  std::filesystem::path model_dir;   // the fine-tuned HF directory
  std::filesystem::path data_dir;    // the examples' media are under it
  std::filesystem::path out_dir;     // inputs.jsonl, captions.jsonl (+ its part)
  std::filesystem::path log;         // plm caption's stdout and stderr
  int num_frames = 0;                // per clip, as in training
};

// Runs `plm caption --model ... --system ... --num-frames N` on `examples` (which share one system turn) as a
// child process; progress(done) as captions land. An error carries the end of the log.
absl::StatusOr<std::vector<Prediction>> caption_examples(const CaptionStep& step,
                                                         const std::vector<data::SynthExample>& examples,
                                                         const std::function<void(int64_t)>& progress = {});

}  // namespace plm::demo
