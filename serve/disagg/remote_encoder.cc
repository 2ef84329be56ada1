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
  for (int rank : config_.encoder_ranks) {
    stats_.encoders.push_back({.rank = rank});
    routing_.push_back(config_.join_encoders ? Routing::kJoining : Routing::kRoutable);
  }
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
  // Every encoder has its replies sent and this front's stop: its heartbeats may end (it may exit or move).
  std::vector<int> ranks;
  {
    const std::lock_guard lock(mutex_);
    for (const EncoderPoolStats::Encoder& e : stats_.encoders) ranks.push_back(e.rank);
  }
  for (int rank : ranks) liveness_->forget(rank);
}

void RemoteEncoder::add_encoder(int rank) {
  {
    const std::lock_guard lock(mutex_);
    stats_.encoders.push_back({.rank = rank});
    routing_.push_back(Routing::kJoining);
  }
  liveness_->watch(rank);  // it watches this front from the join on
  wake_.notify_all();
}

void RemoteEncoder::retire_encoder(int rank) {
  {
    const std::lock_guard lock(mutex_);
    for (size_t e = 0; e < routing_.size(); ++e) {
      if (stats_.encoders[e].rank != rank) continue;
      // One that never got this front's join expects nothing from it (nor sends it heartbeats).
      if (routing_[e] == Routing::kJoining) {
        routing_[e] = Routing::kRetired;
        liveness_->forget(rank);
      }
      if (routing_[e] == Routing::kRoutable) routing_[e] = Routing::kRetiring;
    }
  }
  wake_.notify_all();
}

EncoderPoolStats RemoteEncoder::stats() const {
  const std::lock_guard lock(mutex_);
  EncoderPoolStats s = stats_;
  s.jobs_waiting = static_cast<int64_t>(waiting_.size());
  s.encoders.clear();  // those this front routes to, or awaits replies from
  for (size_t e = 0; e < routing_.size(); ++e) {
    if (routing_[e] == Routing::kRoutable || routing_[e] == Routing::kRetiring) s.encoders.push_back(stats_.encoders[e]);
  }
  return s;
}

int RemoteEncoder::least_loaded() {
  const int n = static_cast<int>(stats_.encoders.size());
  int best = -1;
  int64_t best_load = std::numeric_limits<int64_t>::max();
  for (int i = 1; i <= n; ++i) {  // from the one after the last chosen: ties go round
    const int e = (last_chosen_ + i) % n;
    if (routing_[e] != Routing::kRoutable) continue;
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

int RemoteEncoder::num_left() const {
  int left = 0;
  for (size_t e = 0; e < routing_.size(); ++e) {
    const bool routed = routing_[e] == Routing::kJoining || routing_[e] == Routing::kRoutable;
    left += routed && stats_.encoders[e].alive ? 1 : 0;
  }
  return left;
}

void RemoteEncoder::encoder_died(int rank) {
  bool pool_empty = false;
  {
    // Logged under the lock: the line comes before the 503s it announces (the receiver fails the jobs).
    const std::lock_guard lock(mutex_);
    // Its latest entry: only a watched encoder dies, and a rank watched again (it moved back) has a new entry.
    int index = -1;
    for (int e = static_cast<int>(stats_.encoders.size()) - 1; e >= 0 && index < 0; --e) {
      if (stats_.encoders[e].rank == rank) index = e;
    }
    PLM_CHECK(index >= 0) << "rank " << rank << " is not an encoder";
    stats_.encoders[index].alive = false;
    const int64_t held =
        std::count_if(in_flight_.begin(), in_flight_.end(), [&](const auto& j) { return j.second.encoder == index; });
    const int left = num_left();
    const int64_t total =
        std::count_if(routing_.begin(), routing_.end(), [](Routing r) { return r != Routing::kRetired; });
    pool_empty = left == 0;
    const std::string line = absl::StrFormat(
        "plm serve: front rank %d: encoder rank %d stopped answering (no heartbeat for %g s): its %d requests in "
        "flight fail with 503; %d of %d encoder ranks left%s",
        channels_.jobs->rank(), rank, config_.peer_timeout_s, held, left, total,
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
  if (jobs.empty()) return;
  std::vector<std::string> why;
  {
    const std::lock_guard lock(mutex_);
    for (const Job& job : jobs) {
      why.push_back(job.encoder < 0
                        ? std::string("no encoder rank is left to encode this request's media (every one stopped "
                                      "answering); retry on another replica")
                        : absl::StrCat("encoder rank ", stats_.encoders[job.encoder].rank,
                                       " stopped answering while encoding this request's media; retry"));
    }
  }
  for (size_t i = 0; i < jobs.size(); ++i) jobs[i].done(absl::UnavailableError(why[i]));
  wake_.notify_all();
}

std::optional<RemoteEncoder::Action> RemoteEncoder::next_action() {
  for (size_t e = 0; e < routing_.size(); ++e) {
    const EncoderPoolStats::Encoder& encoder = stats_.encoders[e];
    if (routing_[e] == Routing::kJoining) {
      routing_[e] = Routing::kRoutable;  // jobs for it follow the join: only the dispatcher sends
      return Action{.kind = Action::Kind::kJoin, .rank = encoder.rank};
    }
    if (routing_[e] == Routing::kRetiring && (encoder.outstanding_items == 0 || !encoder.alive)) {
      routing_[e] = Routing::kRetired;
      return Action{.kind = Action::Kind::kStop, .rank = encoder.rank};
    }
  }
  if (!waiting_.empty()) {
    const int e = least_loaded();
    if (e < 0) {  // no encoder is left (none joins first: joins go above)
      ++stats_.jobs_failed;
      Action unplaced{.kind = Action::Kind::kFail};
      unplaced.job = std::move(waiting_.front());
      waiting_.pop_front();
      return unplaced;
    }
    // Backpressure: the head waits while what is in flight would exceed the bound (a job alone always goes).
    const bool fits = stats_.in_flight_bytes == 0 ||
                      stats_.in_flight_bytes + waiting_.front().bytes <= config_.max_in_flight_bytes;
    if (!fits) return std::nullopt;
    Job next = std::move(waiting_.front());
    waiting_.pop_front();
    next.encoder = e;
    next.sent = Clock::now();
    EncoderPoolStats::Encoder& encoder = stats_.encoders[e];
    encoder.outstanding_items += num_items(next.prompt);
    stats_.in_flight_bytes += next.bytes;
    stats_.items[0] += next.prompt.images.count();
    stats_.items[1] += next.prompt.videos.count();
    // Sent from the action: the reply may come, and the job go, before the send ends.
    Action send{.kind = Action::Kind::kJob, .rank = encoder.rank, .id = next.id, .media = take_job_media(next.prompt)};
    in_flight_.emplace(next.id, std::move(next));  // before the send: the reply may come back before it ends
    return send;
  }
  if (stopping_) return Action{.kind = Action::Kind::kFinish};  // everything is sent
  return std::nullopt;
}

void RemoteEncoder::dispatch_loop() {
  const auto alive = [this](int rank) { return [this, rank] { return liveness_->alive(rank); }; };
  // Jobs on their way, with their encoder's rank: several may be in flight at once, each to its encoder in order.
  std::vector<std::pair<int, WireMessage>> sending;
  // Drops the sends that are done or whose encoder died (those are lost; the receiver fails their jobs).
  const auto poll_sends = [&] {
    std::erase_if(sending, [&](std::pair<int, WireMessage>& s) {
      if (finished(s.second)) return true;
      if (liveness_->alive(s.first)) return false;
      lost_.keep(std::move(s.second));
      return true;
    });
  };
  for (bool done = false; !done;) {
    poll_sends();
    std::optional<Action> action;
    {
      std::unique_lock lock(mutex_);
      if (sending.empty()) {
        while (!(action = next_action())) wake_.wait(lock);
      } else if (!(action = next_action())) {
        wake_.wait_for(lock, std::chrono::milliseconds(1));
        continue;  // poll the sends again
      }
    }
    switch (action->kind) {
      case Action::Kind::kJoin:
        send_join(*channels_.jobs, action->rank, alive(action->rank), lost_);
        break;
      case Action::Kind::kStop:  // a retired encoder, its jobs answered (or it died): it expects nothing more
        if (liveness_->alive(action->rank)) send_stop(*channels_.jobs, action->rank, alive(action->rank), lost_);
        liveness_->forget(action->rank);
        break;
      case Action::Kind::kJob:
        sending.emplace_back(action->rank, start_job(*channels_.jobs, action->rank, action->id, std::move(action->media)));
        break;
      case Action::Kind::kFail: {
        std::vector<Job> failed;
        failed.push_back(std::move(action->job));
        fail(std::move(failed));
        break;
      }
      case Action::Kind::kFinish:
        done = true;
        break;
    }
  }
  while (!sending.empty()) {
    poll_sends();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  std::vector<int> known;  // every encoder that expects a stop from this front
  {
    const std::lock_guard lock(mutex_);
    for (size_t e = 0; e < routing_.size(); ++e) {
      if (routing_[e] == Routing::kRoutable || routing_[e] == Routing::kRetiring) known.push_back(stats_.encoders[e].rank);
      routing_[e] = Routing::kRetired;
    }
  }
  for (int rank : known) {
    if (liveness_->alive(rank)) send_stop(*channels_.jobs, rank, alive(rank), lost_);
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
