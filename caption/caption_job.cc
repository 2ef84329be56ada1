#include "caption/caption_job.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "core/check.h"
#include "serve/prompt_preparer.h"
#include "serve/worker_pool.h"

namespace plm::caption {

namespace {

using Clock = std::chrono::steady_clock;

int64_t microseconds(double s) { return static_cast<int64_t>(s * 1e6); }
double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

// Finished records, handed from the decode threads and the engine thread to run()'s thread.
class Mailbox {
 public:
  void post(CaptionRecord record, int64_t prepare_us) {
    {
      const std::lock_guard lock(mutex_);
      records_.push_back({std::move(record), prepare_us});
    }
    ready_.notify_one();
  }
  struct Entry {
    CaptionRecord record;
    int64_t prepare_us;
  };
  // Everything posted, waiting up to `timeout` for the first.
  std::vector<Entry> take(std::chrono::duration<double> timeout) {
    std::unique_lock lock(mutex_);
    ready_.wait_for(lock, timeout, [&] { return !records_.empty(); });
    std::vector<Entry> out(std::make_move_iterator(records_.begin()), std::make_move_iterator(records_.end()));
    records_.clear();
    return out;
  }

 private:
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<Entry> records_;
};

CaptionRecord error_record(const CaptionItem& item, const absl::Status& status) {
  return {.id = item.id, .path = item.path, .error = std::string(status.message())};
}

// One item's engine request: collects the streamed text and posts the record at the final update.
serve::UpdateCallback collect_reply(const CaptionItem& item, int64_t frames, int64_t prepare_us,
                                    std::shared_ptr<Mailbox> mailbox) {
  auto text = std::make_shared<std::string>();
  return [item, frames, prepare_us, mailbox = std::move(mailbox), text](const serve::RequestUpdate& u) {
    *text += u.text;
    if (!u.finish) return;
    CaptionRecord record;
    switch (*u.finish) {
      case serve::FinishReason::kStop:
      case serve::FinishReason::kLength:
        record = {.id = item.id,
                  .path = item.path,
                  .error = std::nullopt,
                  .caption = std::move(*text),
                  .frames = frames,
                  .prompt_tokens = u.usage.prompt_tokens,
                  .completion_tokens = u.usage.completion_tokens,
                  .seconds = u.latency_s,
                  .embedding = u.media_embedding};
        break;
      case serve::FinishReason::kCancelled: record = error_record(item, absl::CancelledError("cancelled")); break;
      case serve::FinishReason::kError: record = error_record(item, u.error); break;
    }
    mailbox->post(std::move(record), prepare_us);
  };
}

}  // namespace

CaptionJob::CaptionJob(serve::Engine& engine, const runtime::ModelDirectory& model, CaptionJobConfig config)
    : engine_(engine), model_(model), config_(std::move(config)) {
  PLM_CHECK(config_.max_in_flight >= 1 && config_.num_decode_threads >= 1 && config_.max_new_tokens >= 1)
      << config_.max_in_flight << " " << config_.num_decode_threads << " " << config_.max_new_tokens;
}

std::string CaptionJob::prompt_of(const CaptionItem& item) const {
  if (item.prompt) return *item.prompt;
  if (config_.prompt) return *config_.prompt;
  return item.type == MediaType::kImage ? kDefaultImagePrompt : kDefaultVideoPrompt;
}

absl::StatusOr<CaptionCounters> CaptionJob::run(const std::vector<CaptionItem>& items, PartWriter& part,
                                                const Tick& tick) {
  const auto mailbox = std::make_shared<Mailbox>();
  CaptionCounters counters;
  counters.items_total = static_cast<int64_t>(items.size());
  absl::Status write_error;
  {
    std::atomic<bool> stopping{false};  // the part cannot be written: what is still queued is not decoded
    // Runs on a decode thread: prepares the item and submits it, or posts its error record.
    const auto prepare = [this, mailbox, &stopping](const CaptionItem& item) {
      const Clock::time_point start = Clock::now();
      if (stopping.load()) return mailbox->post(error_record(item, absl::CancelledError("cancelled")), 0);
      const std::vector<std::string> media = {item.path};
      const std::vector<data::ChatMessage> messages =
          item.type == MediaType::kImage ? data::single_turn_conversation(prompt_of(item), media, {}, config_.system)
                                         : data::single_turn_conversation(prompt_of(item), {}, media, config_.system);
      absl::StatusOr<serve::PreparedPrompt> prompt = serve::prepare_local_chat_prompt(messages, model_, config_.media);
      const int64_t prepare_us = microseconds(seconds_since(start));
      if (!prompt.ok()) return mailbox->post(error_record(item, prompt.status()), prepare_us);
      const int64_t frames = prompt->videos.count() + prompt->images.count();
      serve::EngineRequest request{.id = item.id,
                                   .prompt = *std::move(prompt),
                                   .params = {.max_tokens = config_.max_new_tokens, .sampling = {}, .stop = {}},
                                   .on_update = collect_reply(item, frames, prepare_us, mailbox),
                                   .arrival = start,
                                   .pool_media_embeddings = config_.save_embeddings};
      if (absl::Status s = engine_.submit(std::move(request)); !s.ok()) mailbox->post(error_record(item, s), prepare_us);
    };

    serve::WorkerPool decoders(config_.num_decode_threads);  // after what its jobs use: joined before they go
    const Clock::time_point start = Clock::now();
    double next_tick_s = config_.tick_interval_s;
    size_t next = 0;
    int64_t in_flight = 0;  // posted to the decoders, not yet written
    while (next < items.size() || in_flight > 0) {
      while (next < items.size() && in_flight < config_.max_in_flight) {
        decoders.post([&prepare, &item = items[next]] { prepare(item); });
        ++next;
        ++in_flight;
      }
      const double wait_s = std::max(0.0, next_tick_s - seconds_since(start));
      std::vector<Mailbox::Entry> finished = mailbox->take(std::chrono::duration<double>(wait_s));
      in_flight -= static_cast<int64_t>(finished.size());
      std::vector<CaptionRecord> records;
      for (Mailbox::Entry& e : finished) {
        const CaptionRecord& r = e.record;
        counters.items_done += 1;
        counters.prepare_us += e.prepare_us;
        if (!r.ok()) {
          counters.errors += 1;
        } else {
          counters.frames += r.frames;
          counters.prompt_tokens += r.prompt_tokens;
          counters.completion_tokens += r.completion_tokens;
          counters.latency_us += microseconds(r.seconds);
        }
        records.push_back(std::move(e.record));
      }
      if (write_error.ok()) {
        write_error = part.append(records);
        if (!write_error.ok()) {
          // Nothing more can be recorded: stop feeding, cancel what the engine holds, and wait for it.
          stopping.store(true);
          next = items.size();
          for (const CaptionItem& item : items) engine_.cancel(item.id);
        }
      }
      if (seconds_since(start) >= next_tick_s) {
        const serve::EngineStats stats = engine_.stats();
        counters.engine_vision_us = microseconds(stats.vision_s);
        counters.engine_forward_us = microseconds(stats.forward_s);
        counters.engine_step_us = microseconds(stats.step_s);
        tick(counters);
        next_tick_s = seconds_since(start) + config_.tick_interval_s;
      }
    }
  }  // the decode threads are idle and joined
  if (!write_error.ok()) return write_error;
  const serve::EngineStats stats = engine_.stats();
  counters.engine_vision_us = microseconds(stats.vision_s);
  counters.engine_forward_us = microseconds(stats.forward_s);
  counters.engine_step_us = microseconds(stats.step_s);
  return counters;
}

}  // namespace plm::caption
