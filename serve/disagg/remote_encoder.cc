#include "serve/disagg/remote_encoder.h"

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/check.h"
#include "core/cuda/runtime.h"

namespace plm::serve::disagg {

namespace {

using Clock = std::chrono::steady_clock;

int64_t num_items(const PreparedPrompt& p) { return p.images.count() + p.videos.count(); }

}  // namespace

int EncoderPoolStats::num_alive() const {
  return static_cast<int>(std::count_if(encoders.begin(), encoders.end(), [](const Encoder& e) { return e.alive; }));
}

RemoteEncoder::RemoteEncoder(const RemoteEncoderConfig& config, const EncoderChannels& channels)
    : config_(config), channels_(channels) {
  PLM_CHECK(!config_.encoder_ranks.empty() && config_.rows_per_item > 0 && config_.hidden > 0);
  PLM_CHECK(channels_.heartbeat != nullptr) << "a front watches its encoders over a heartbeat group";
  for (int rank : config_.encoder_ranks) stats_.encoders.push_back({.rank = rank});
  liveness_ = std::make_unique<PeerLiveness>(
      *channels_.heartbeat, config_.encoder_ranks,
      PeerLivenessConfig{.interval_s = std::min(0.5, config_.peer_timeout_s / 4),
                         .timeout_s = config_.peer_timeout_s,
                         .on_death = [this](int rank) { encoder_died(rank); }});
  dispatcher_ = std::thread([this] { dispatch_loop(); });
  receiver_ = std::thread([this] { receive_loop(); });
}

RemoteEncoder::~RemoteEncoder() { stop(); }

void RemoteEncoder::encode(PreparedPrompt prompt, Done done) {
  {
    std::unique_lock lock(mutex_);
    if (stopping_) {
      lock.unlock();
      done(absl::UnavailableError("the server is shutting down"));
      return;
    }
    Job job{.id = next_id_++, .prompt = std::move(prompt), .done = std::move(done)};
    job.bytes = num_items(job.prompt) * config_.rows_per_item * config_.hidden * static_cast<int64_t>(dtype_size(config_.dtype));
    waiting_.push_back(std::move(job));
  }
  wake_.notify_all();
}

void RemoteEncoder::stop() {
  {
    const std::lock_guard lock(mutex_);
    if (stopping_ && !dispatcher_.joinable()) return;
    stopping_ = true;
  }
  wake_.notify_all();
  if (dispatcher_.joinable()) dispatcher_.join();
  if (receiver_.joinable()) receiver_.join();
}

EncoderPoolStats RemoteEncoder::stats() const {
  const std::lock_guard lock(mutex_);
  EncoderPoolStats s = stats_;
  s.jobs_waiting = static_cast<int64_t>(waiting_.size());
  return s;
}

int RemoteEncoder::least_loaded() {
  const int n = static_cast<int>(stats_.encoders.size());
  int best = -1;
  int64_t best_load = std::numeric_limits<int64_t>::max();
  for (int i = 1; i <= n; ++i) {  // from the one after the last chosen: ties go round
    const int e = (last_chosen_ + i) % n;
    const EncoderPoolStats::Encoder& s = stats_.encoders[e];
    const int64_t load = s.outstanding_items + s.queued_items;
    if (s.alive && load < best_load) {
      best = e;
      best_load = load;
    }
  }
  if (best >= 0) last_chosen_ = best;
  return best;
}

void RemoteEncoder::encoder_died(int rank) {
  bool pool_empty = false;
  {
    // Logged under the lock: the line comes before the 503s it announces (the receiver fails the jobs).
    const std::lock_guard lock(mutex_);
    const auto e = std::find_if(stats_.encoders.begin(), stats_.encoders.end(),
                                [rank](const EncoderPoolStats::Encoder& x) { return x.rank == rank; });
    PLM_CHECK(e != stats_.encoders.end()) << "rank " << rank << " is not an encoder";
    e->alive = false;
    const int index = static_cast<int>(e - stats_.encoders.begin());
    const int64_t held =
        std::count_if(in_flight_.begin(), in_flight_.end(), [&](const auto& j) { return j.second.encoder == index; });
    const int left = stats_.num_alive();
    pool_empty = left == 0;
    const std::string line = absl::StrFormat(
        "plm serve: front rank %d: encoder rank %d stopped answering (no heartbeat for %g s): its %d requests in "
        "flight fail with 503; %d of %d encoder ranks left%s",
        channels_.jobs->rank(), rank, config_.peer_timeout_s, held, left, stats_.encoders.size(),
        pool_empty ? "; requests with media fail with 503 from now on" : "");
    if (config_.log) config_.log(line);
  }
  wake_.notify_all();
  if (pool_empty && config_.on_pool_empty) config_.on_pool_empty();
}

std::vector<RemoteEncoder::Job> RemoteEncoder::take_orphans() {
  std::vector<Job> orphans;
  for (auto it = in_flight_.begin(); it != in_flight_.end();) {
    EncoderPoolStats::Encoder& e = stats_.encoders[it->second.encoder];
    if (e.alive) {
      ++it;
      continue;
    }
    e.outstanding_items -= num_items(it->second.prompt);
    stats_.in_flight_bytes -= it->second.bytes;
    orphans.push_back(std::move(it->second));
    in_flight_.erase(it++);
  }
  stats_.jobs_failed += static_cast<int64_t>(orphans.size());
  return orphans;
}

void RemoteEncoder::fail(std::vector<Job> jobs) {
  for (Job& job : jobs) {
    const std::string why =
        job.encoder < 0 ? absl::StrCat("no encoder rank is left to encode this request's media (all ",
                                       config_.encoder_ranks.size(), " stopped answering); retry on another replica")
                        : absl::StrCat("encoder rank ", config_.encoder_ranks[job.encoder],
                                       " stopped answering while encoding this request's media; retry");
    job.done(absl::UnavailableError(why));
  }
  if (!jobs.empty()) wake_.notify_all();
}

void RemoteEncoder::dispatch_loop() {
  // Jobs on their way, per encoder index: several may be in flight at once, each to its encoder in order.
  std::vector<std::pair<int, WireMessage>> sending;
  // Drops the sends that are done or whose encoder died (those are lost; the receiver fails their jobs).
  const auto poll_sends = [&] {
    std::erase_if(sending, [&](std::pair<int, WireMessage>& s) {
      if (finished(s.second)) return true;
      if (alive(s.first)) return false;
      lost_.keep(std::move(s.second));
      return true;
    });
  };
  while (true) {
    poll_sends();
    int64_t id = 0;
    int encoder = -1;
    JobMedia media;
    std::vector<Job> unplaced;
    {
      std::unique_lock lock(mutex_);
      // Backpressure: the head waits while what is in flight would exceed the bound (a job alone always goes).
      const auto can_send = [&] {
        if (waiting_.empty()) return false;
        return stats_.in_flight_bytes == 0 || stats_.in_flight_bytes + waiting_.front().bytes <= config_.max_in_flight_bytes;
      };
      const auto ready = [&] { return can_send() || (stopping_ && waiting_.empty()); };
      if (sending.empty()) {
        wake_.wait(lock, ready);
      } else if (!wake_.wait_for(lock, std::chrono::milliseconds(1), ready)) {
        continue;  // poll the sends again
      }
      if (waiting_.empty()) break;  // stopping, and everything is sent
      Job next = std::move(waiting_.front());
      waiting_.pop_front();
      next.encoder = least_loaded();
      if (next.encoder < 0) {
        ++stats_.jobs_failed;
        unplaced.push_back(std::move(next));
      } else {
        id = next.id;
        encoder = next.encoder;
        next.sent = Clock::now();
        media = take_job_media(next.prompt);  // sent from here: the reply may come, and the job go, before the send ends
        EncoderPoolStats::Encoder& e = stats_.encoders[next.encoder];
        e.outstanding_items += num_items(next.prompt);
        stats_.in_flight_bytes += next.bytes;
        stats_.items[0] += next.prompt.images.count();
        stats_.items[1] += next.prompt.videos.count();
        in_flight_.emplace(next.id, std::move(next));  // before the send: the reply may come back before it ends
      }
    }
    if (!unplaced.empty()) {
      fail(std::move(unplaced));
      continue;
    }
    sending.emplace_back(encoder, start_job(*channels_.jobs, config_.encoder_ranks[encoder], id, std::move(media)));
  }
  while (!sending.empty()) {
    poll_sends();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  for (int e = 0; e < static_cast<int>(config_.encoder_ranks.size()); ++e) {
    if (alive(e)) send_stop(*channels_.jobs, config_.encoder_ranks[e], [this, e] { return alive(e); }, lost_);
  }
  {
    const std::lock_guard lock(mutex_);
    dispatcher_done_ = true;
  }
  wake_.notify_all();
}

void RemoteEncoder::receive_loop() {
  // Wakes the wait for a reply: the end, or jobs whose encoder died.
  const auto interrupt = [this] {
    const std::lock_guard lock(mutex_);
    if (dispatcher_done_ && in_flight_.empty()) return true;
    return std::any_of(in_flight_.begin(), in_flight_.end(),
                       [&](const auto& j) { return !stats_.encoders[j.second.encoder].alive; });
  };
  if (config_.device.is_cuda()) cuda_set_device(config_.device.index);  // the rows land on the model's GPU
  while (true) {
    const std::optional<int> peer = wait_for_message(*channels_.replies, kReplyTag, interrupt);
    std::vector<Job> orphans;
    bool finished = false;
    {
      const std::lock_guard lock(mutex_);
      orphans = take_orphans();
      finished = !peer && dispatcher_done_ && in_flight_.empty();
    }
    fail(std::move(orphans));
    if (finished) return;
    if (!peer) continue;
    const std::optional<ReceivedReply> reply =
        recv_reply(*channels_.replies, *channels_.data, *peer, config_.rows_per_item, config_.hidden, config_.dtype,
                   config_.device, [this, rank = *peer] { return liveness_->alive(rank); }, lost_);
    if (!reply) continue;  // the encoder died sending it: its jobs fail above on the next turn
    Job job;
    {
      const std::lock_guard lock(mutex_);
      const auto it = in_flight_.find(reply->info.id);
      if (it == in_flight_.end()) {
        // Its encoder was declared dead just before the reply came, and the job failed already.
        PLM_CHECK(!liveness_->alive(*peer)) << "a reply from rank " << *peer << " to unknown request " << reply->info.id;
        continue;
      }
      job = std::move(it->second);
      in_flight_.erase(it);
      EncoderPoolStats::Encoder& e = stats_.encoders[job.encoder];
      e.outstanding_items -= num_items(job.prompt);
      e.queued_items = reply->info.queued_items;
      e.busy_fraction = reply->info.uptime_s > 0 ? reply->info.busy_s / reply->info.uptime_s : 0;
      stats_.in_flight_bytes -= job.bytes;
      stats_.embedding_bytes += reply->payload_bytes;
      ++stats_.transfers;
      ++stats_.jobs_done;
      stats_.transfer_s += reply->transfer_s;
      stats_.round_trip_s += std::chrono::duration<double>(Clock::now() - job.sent).count();
      for (int kind = 0; kind < 2; ++kind) {
        stats_.encoded[kind] += reply->info.encoded[kind];
        stats_.encode_s[kind] += reply->info.encode_s[kind];
      }
    }
    wake_.notify_all();
    deliver(std::move(job), *reply);
  }
}

void RemoteEncoder::deliver(Job job, const ReceivedReply& reply) {
  size_t flag = 0;
  for (int kind = 0; kind < 2; ++kind) {
    MediaTiles& tiles = kind == 0 ? job.prompt.images : job.prompt.videos;
    PLM_CHECK_EQ(reply.info.num_items[kind], tiles.count()) << "request " << job.id << ": items per kind";
    for (int64_t i = 0; i < tiles.count(); ++i) {
      auto entry = std::make_shared<OwnedTensor>(Shape{config_.rows_per_item, config_.hidden}, config_.dtype, config_.device);
      copy_tensor(entry->view(), reply.rows[kind].view().slice(0, i * config_.rows_per_item, (i + 1) * config_.rows_per_item));
      tiles.embeddings.push_back(std::move(entry));
      tiles.encoded_remotely.push_back(reply.encoded_flags[flag++]);
    }
  }
  job.done(std::move(job.prompt));
}

}  // namespace plm::serve::disagg
