#include "serve/disagg/encoder_worker.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/check.h"
#include "core/cuda/runtime.h"
#include "serve/disagg/peer_liveness.h"
#include "serve/disagg/wire.h"
#include "serve/encoder_cache.h"

namespace plm::serve::disagg {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Jobs from every front, in arrival order. Thread-safe.
class JobQueue {
 public:
  void push(ReceivedJob job) {
    {
      const std::lock_guard lock(mutex_);
      num_items_ += job.num_items();
      jobs_.push_back(std::move(job));
    }
    ready_.notify_one();
  }
  void close() {
    {
      const std::lock_guard lock(mutex_);
      closed_ = true;
    }
    ready_.notify_one();
  }
  // At least one job (more while they fit `max_items`); empty once closed and drained.
  std::vector<ReceivedJob> take(int64_t max_items) {
    std::unique_lock lock(mutex_);
    ready_.wait(lock, [&] { return closed_ || !jobs_.empty(); });
    std::vector<ReceivedJob> batch;
    int64_t items = 0;
    while (!jobs_.empty() && (batch.empty() || items + jobs_.front().num_items() <= max_items)) {
      items += jobs_.front().num_items();
      batch.push_back(std::move(jobs_.front()));
      jobs_.pop_front();
    }
    num_items_ -= items;
    return batch;
  }
  int64_t num_items() const {
    const std::lock_guard lock(mutex_);
    return num_items_;
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<ReceivedJob> jobs_;
  int64_t num_items_ = 0;
  bool closed_ = false;
};

// The receiving thread: jobs into the queue until every front has said stop or died; returns the fronts that died.
std::vector<int> receive_jobs(distributed::Communicator& jobs, const EncoderWorkerConfig& config,
                              const PeerLiveness& liveness, LostMessages& lost, JobQueue& queue) {
  const std::vector<int>& fronts = config.front_ranks;
  std::vector<bool> stopped(fronts.size()), died(fronts.size());
  // Fronts newly silent before saying stop: logged once each.
  const auto newly_dead = [&] {
    std::vector<size_t> dead;
    for (size_t i = 0; i < fronts.size(); ++i) {
      if (!stopped[i] && !died[i] && !liveness.alive(fronts[i])) dead.push_back(i);
    }
    return dead;
  };
  const auto all_gone = [&] {
    for (size_t i = 0; i < fronts.size(); ++i) {
      if (!stopped[i] && !died[i]) return false;
    }
    return true;
  };
  while (true) {
    const std::optional<int> front = wait_for_message(jobs, kJobTag, [&] { return !newly_dead().empty(); });
    for (size_t i : newly_dead()) {
      died[i] = true;
      if (config.log) {
        config.log(absl::StrFormat("plm serve: encoder rank %d: front rank %d stopped answering (no heartbeat for %g s); "
                                   "dropping its jobs",
                                   jobs.rank(), fronts[i], config.peer_timeout_s));
      }
    }
    if (all_gone()) break;
    if (!front) continue;
    const size_t index = static_cast<size_t>(std::find(fronts.begin(), fronts.end(), *front) - fronts.begin());
    PLM_CHECK(index < fronts.size()) << "a job from rank " << *front << ", which is not a front";
    std::optional<ReceivedJob> job = recv_job(jobs, *front, [&] { return liveness.alive(*front); }, lost);
    if (!job) continue;  // the front died sending it
    if (job->stop) {
      stopped[index] = true;
      if (all_gone()) break;
    } else {
      queue.push(std::move(*job));
    }
  }
  queue.close();
  std::vector<int> dead;
  for (size_t i = 0; i < fronts.size(); ++i) {
    if (died[i]) dead.push_back(fronts[i]);
  }
  return dead;
}

// One kind's items of a batch of jobs, resolved from the cache or encoded together.
struct KindBatch {
  absl::flat_hash_map<MediaKey, EncoderCache::Entry> rows;
  absl::flat_hash_map<MediaKey, bool> encoded;  // the tower ran on it in this batch
  int64_t num_encoded = 0;
  double encode_s = 0;
};

KindBatch resolve_kind(const model::PlmModel& model, const std::vector<ReceivedJob>& jobs, int kind,
                       EncoderCache& cache) {
  KindBatch b;
  std::vector<std::pair<MediaKey, Tensor>> misses;  // distinct keys, with their pixels
  for (const ReceivedJob& job : jobs) {
    for (size_t i = 0; i < job.media.keys[kind].size(); ++i) {
      const MediaKey& key = job.media.keys[kind][i];
      if (b.rows.contains(key)) continue;
      EncoderCache::Entry entry = cache.find(key);
      b.encoded[key] = entry == nullptr;
      if (entry == nullptr) misses.emplace_back(key, job.media.pixels[kind].view().select(0, static_cast<int64_t>(i)));
      b.rows[key] = std::move(entry);
    }
  }
  if (misses.empty()) return b;
  const Clock::time_point start = Clock::now();
  const Tensor first = misses[0].second;
  const int64_t n = static_cast<int64_t>(misses.size());
  OwnedTensor pixels({n, first.size(0), first.size(1), first.size(2)}, DType::kF32);
  for (int64_t i = 0; i < n; ++i) copy_tensor(pixels.view().select(0, i), misses[i].second);
  const OwnedTensor rows = model.encode_media(pixels);  // (n * tokens_per_tile, H)
  for (int64_t i = 0; i < n; ++i) {
    auto entry = std::make_shared<OwnedTensor>(Shape{rows.size(0) / n, rows.size(1)}, rows.dtype(), rows.device());
    copy_tensor(entry->view(), model.tile_rows(rows, i));
    cache.insert(misses[i].first, entry);
    b.rows[misses[i].first] = std::move(entry);
  }
  if (!model.device().is_cpu()) cuda_stream_synchronize(Stream{});
  b.encode_s = seconds_since(start);
  b.num_encoded = n;
  return b;
}

}  // namespace

absl::Status run_encoder_worker(const model::PlmModel& model, const EncoderChannels& channels,
                                const EncoderWorkerConfig& config) {
  PLM_CHECK(channels.jobs != nullptr && channels.replies != nullptr && channels.data != nullptr &&
            channels.heartbeat != nullptr);
  PLM_CHECK(!config.front_ranks.empty());
  PLM_CHECK(model.has_vision()) << "an encoder rank needs the vision tower";
  const Clock::time_point started = Clock::now();
  const int64_t rows_per_item = model.config().tokens_per_tile(), hidden = model.config().text.hidden_size;
  EncoderCache cache(config.cache_bytes);
  JobQueue queue;
  LostMessages lost;  // replies and jobs cut short by a front's death
  const PeerLiveness liveness(*channels.heartbeat, config.front_ranks,
                              {.interval_s = std::min(0.5, config.peer_timeout_s / 4), .timeout_s = config.peer_timeout_s});
  std::vector<int> dead_fronts;
  std::thread receiver([&] { dead_fronts = receive_jobs(*channels.jobs, config, liveness, lost, queue); });
  double busy_s = 0;
  while (true) {
    const std::vector<ReceivedJob> jobs = queue.take(config.max_items_per_batch);
    if (jobs.empty()) break;
    std::array<KindBatch, 2> kinds = {resolve_kind(model, jobs, 0, cache), resolve_kind(model, jobs, 1, cache)};
    busy_s += kinds[0].encode_s + kinds[1].encode_s;
    for (const ReceivedJob& job : jobs) {
      if (!liveness.alive(job.front)) continue;  // nobody to reply to
      ReplyInfo info{.id = job.id, .queued_items = queue.num_items(), .busy_s = busy_s, .uptime_s = seconds_since(started)};
      std::vector<bool> flags;
      std::array<OwnedTensor, 2> rows;
      for (int kind = 0; kind < 2; ++kind) {
        const std::vector<MediaKey>& keys = job.media.keys[kind];
        const int64_t n = static_cast<int64_t>(keys.size());
        info.num_items[kind] = n;
        if (n == 0) continue;
        rows[kind] = OwnedTensor({n * rows_per_item, hidden}, model.dtype(), model.device());
        for (int64_t i = 0; i < n; ++i) {
          const EncoderCache::Entry& entry = kinds[kind].rows.at(keys[i]);
          copy_tensor(rows[kind].view().slice(0, i * rows_per_item, (i + 1) * rows_per_item), entry->view());
          const bool encoded = kinds[kind].encoded.at(keys[i]);
          flags.push_back(encoded);
          info.encoded[kind] += encoded ? 1 : 0;
        }
        // The job's share of the batch's tower time: by its items the tower ran on.
        if (kinds[kind].num_encoded > 0) {
          info.encode_s[kind] = kinds[kind].encode_s * static_cast<double>(info.encoded[kind]) /
                                static_cast<double>(kinds[kind].num_encoded);
        }
      }
      // A front that died meanwhile gets nothing: its jobs' replies are dropped (kept in `lost`).
      send_reply(*channels.replies, *channels.data, job.front, info, flags, std::move(rows),
                 [&] { return liveness.alive(job.front); }, lost);
    }
  }
  receiver.join();
  if (dead_fronts.size() == config.front_ranks.size()) {
    return absl::UnavailableError(absl::StrCat("encoder rank ", channels.jobs->rank(), ": no front is left (rank",
                                               dead_fronts.size() > 1 ? "s " : " ", absl::StrJoin(dead_fronts, ", "),
                                               " stopped answering before saying stop); exiting"));
  }
  return absl::OkStatus();
}

}  // namespace plm::serve::disagg
