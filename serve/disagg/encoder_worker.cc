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

// What the receiving thread saw of the fronts.
struct FrontsSeen {
  int known = 0;           // fronts it knew at its start or that joined
  std::vector<int> died;   // of them, those that stopped answering before saying stop
};

// The receiving thread: jobs into the queue until every front it knows has said stop or died, and it may exit
// (or a front died: under `--rebalance` no end of the job may come any more). A joining front is watched from its
// join on; a stopped one's silence is no death (it may have moved to the encoder pool), though the replies still
// owed to it are dropped once it is silent.
FrontsSeen receive_jobs(distributed::Communicator& jobs, const EncoderWorkerConfig& config, PeerLiveness& liveness,
                        LostMessages& lost, JobQueue& queue) {
  enum class State { kActive, kStopped, kDied };
  absl::flat_hash_map<int, State> fronts;  // by rank
  for (int rank : config.front_ranks) fronts[rank] = State::kActive;
  FrontsSeen seen{.known = static_cast<int>(fronts.size()), .died = {}};
  // Fronts newly silent before saying stop: logged once each.
  const auto newly_dead = [&] {
    std::vector<int> dead;
    for (const auto& [rank, state] : fronts) {
      if (state == State::kActive && !liveness.alive(rank)) dead.push_back(rank);
    }
    return dead;
  };
  const auto all_gone = [&] {
    return std::none_of(fronts.begin(), fronts.end(), [](const auto& f) { return f.second == State::kActive; });
  };
  const auto may_end = [&] { return all_gone() && (!seen.died.empty() || config.may_exit()); };
  while (true) {
    const std::optional<int> front =
        wait_for_message(jobs, kJobTag, [&] { return !newly_dead().empty() || may_end(); });
    for (int rank : newly_dead()) {
      fronts[rank] = State::kDied;
      seen.died.push_back(rank);
      if (config.log) {
        config.log(absl::StrFormat("plm serve: encoder rank %d: front rank %d stopped answering (no heartbeat for %g s); "
                                   "dropping its jobs",
                                   jobs.rank(), rank, config.peer_timeout_s));
      }
    }
    if (!front) {
      if (may_end()) break;
      continue;
    }
    const auto it = fronts.find(*front);
    std::optional<ReceivedJob> job =
        recv_job(jobs, *front, [&] { return it == fronts.end() || liveness.alive(*front); }, lost);
    if (!job) continue;  // the front died sending it
    if (job->join) {
      if (it == fronts.end()) ++seen.known;
      fronts[*front] = State::kActive;
      liveness.watch(*front);
      continue;
    }
    PLM_CHECK(it != fronts.end()) << "a job from rank " << *front << ", which is not a front of this encoder";
    if (job->stop) {
      if (it->second == State::kActive) it->second = State::kStopped;
    } else {
      queue.push(std::move(*job));
    }
  }
  queue.close();
  return seen;
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
  PLM_CHECK(model.has_vision()) << "an encoder rank needs the vision tower";
  const Clock::time_point started = Clock::now();
  const int64_t rows_per_item = model.config().tokens_per_tile(), hidden = model.config().text.hidden_size;
  EncoderCache cache(config.cache_bytes);
  JobQueue queue;
  LostMessages lost;  // replies and jobs cut short by a front's death
  PeerLiveness liveness(*channels.heartbeat, config.front_ranks,
                        {.interval_s = std::min(0.5, config.peer_timeout_s / 4), .timeout_s = config.peer_timeout_s});
  FrontsSeen fronts;
  std::thread receiver([&] { fronts = receive_jobs(*channels.jobs, config, liveness, lost, queue); });
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
  if (!fronts.died.empty() && static_cast<int>(fronts.died.size()) == fronts.known) {
    return absl::UnavailableError(absl::StrCat("encoder rank ", channels.jobs->rank(), ": no front is left (rank",
                                               fronts.died.size() > 1 ? "s " : " ", absl::StrJoin(fronts.died, ", "),
                                               " stopped answering before saying stop); exiting"));
  }
  return absl::OkStatus();
}

}  // namespace plm::serve::disagg
