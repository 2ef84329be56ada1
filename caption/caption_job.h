// CaptionJob: one replica's items through one serving engine, the throughput path of plm caption.
//   decode threads (serve::WorkerPool): video decode, frame sampling, preprocessing, chat template, tokens;
//     each prepared item is submitted to the engine from there, so the engine's queue never runs dry;
//   the engine (serve::Engine): continuous batching, the vision tower over the frames of every item admitted in
//     a step (up to its per-step vision budget), chunked prefill, batched greedy decode;
//   this thread: writes each finished item to the part (caption/part_file.h) and ticks the progress.
// At most max_in_flight items are between "decode started" and "written", which bounds the pixel memory (a
// 32-frame 448x448 video is 77 MB of f32) while keeping the decode threads ahead of the engine (bounded prefetch).
// The prompt is exactly `plm generate --video PATH --prompt TEXT [--system S]`'s (data::single_turn_conversation),
// and decoding is greedy, so a caption equals what plm generate prints. Thread-safety: run() on one thread at a time.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "caption/caption_counters.h"
#include "caption/caption_inputs.h"
#include "caption/part_file.h"
#include "data/multimodal_prompt.h"
#include "runtime/model_directory.h"
#include "serve/engine.h"

namespace plm::caption {

inline constexpr char kDefaultVideoPrompt[] = "Describe this video in detail.";
inline constexpr char kDefaultImagePrompt[] = "Describe this image in detail.";

struct CaptionJobConfig {
  std::optional<std::string> prompt;  // for items without their own; default: kDefault{Video,Image}Prompt
  std::string system;                 // the system turn of every item; empty: the chat template's default
  data::MediaOptions media;           // frame sampling and decode limits
  int64_t max_new_tokens = 256;
  int num_decode_threads = 2;
  int max_in_flight = 32;             // items decoding, waiting for or inside the engine
  bool save_embeddings = false;       // each record carries its pooled media embedding (engine opt-in)
  double tick_interval_s = 1.0;
};

class CaptionJob {
 public:
  // Called on run()'s thread about every tick_interval_s with the counters so far (engine times included).
  using Tick = std::function<void(const CaptionCounters&)>;

  // The engine and the model directory must outlive the job.
  CaptionJob(serve::Engine& engine, const runtime::ModelDirectory& model, CaptionJobConfig config);
  CaptionJob(const CaptionJob&) = delete;
  CaptionJob& operator=(const CaptionJob&) = delete;

  // Captions `items` (an item that fails becomes an error record) and appends every record to `part`.
  // Returns the final counters. An error only when the part cannot be written; the items in flight are then
  // cancelled and waited for before it returns.
  absl::StatusOr<CaptionCounters> run(const std::vector<CaptionItem>& items, PartWriter& part, const Tick& tick);

  // The prompt an item is asked with.
  std::string prompt_of(const CaptionItem& item) const;

 private:
  serve::Engine& engine_;
  const runtime::ModelDirectory& model_;
  const CaptionJobConfig config_;
};

}  // namespace plm::caption
