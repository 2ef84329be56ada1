#include "serve/disagg/remote_encoder.h"

#include <limits>

#include "core/check.h"
#include "core/cuda/runtime.h"

namespace plm::serve::disagg {

namespace {

using Clock = std::chrono::steady_clock;

int64_t num_items(const PreparedPrompt& p) { return p.images.count() + p.videos.count(); }

}  // namespace

RemoteEncoder::RemoteEncoder(const RemoteEncoderConfig& config, const EncoderChannels& channels)
    : config_(config), channels_(channels) {
  PLM_CHECK(!config_.encoder_ranks.empty() && config_.rows_per_item > 0 && config_.hidden > 0);
  for (int rank : config_.encoder_ranks) {
    stats_.encoders.push_back({.rank = rank});
    routing_.push_back(config_.join_encoders ? Routing::kJoining : Routing::kRoutable);
  }
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

void RemoteEncoder::add_encoder(int rank) {
  {
    const std::lock_guard lock(mutex_);
    stats_.encoders.push_back({.rank = rank});
    routing_.push_back(Routing::kJoining);
  }
  wake_.notify_all();
}

void RemoteEncoder::retire_encoder(int rank) {
  {
    const std::lock_guard lock(mutex_);
    for (size_t e = 0; e < routing_.size(); ++e) {
      if (stats_.encoders[e].rank != rank) continue;
      // One that never got this front's join expects nothing from it.
      if (routing_[e] == Routing::kJoining) routing_[e] = Routing::kRetired;
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

int RemoteEncoder::least_loaded() const {
  int best = -1;
  int64_t best_load = std::numeric_limits<int64_t>::max();
  for (int e = 0; e < static_cast<int>(stats_.encoders.size()); ++e) {
    if (routing_[e] != Routing::kRoutable) continue;
    const EncoderPoolStats::Encoder& s = stats_.encoders[e];
    const int64_t load = s.outstanding_items + s.queued_items;
    if (load < best_load) {
      best = e;
      best_load = load;
    }
  }
  return best;
}

std::optional<RemoteEncoder::Action> RemoteEncoder::next_action() {
  for (size_t e = 0; e < routing_.size(); ++e) {
    if (routing_[e] == Routing::kJoining) {
      routing_[e] = Routing::kRoutable;  // jobs for it follow the join: only the dispatcher sends
      return Action{.kind = Action::Kind::kJoin, .rank = stats_.encoders[e].rank};
    }
    if (routing_[e] == Routing::kRetiring && stats_.encoders[e].outstanding_items == 0) {
      routing_[e] = Routing::kRetired;
      return Action{.kind = Action::Kind::kStop, .rank = stats_.encoders[e].rank};
    }
  }
  if (!waiting_.empty()) {
    const int e = least_loaded();
    // Backpressure: the head waits while what is in flight would exceed the bound (a job alone always goes).
    const bool fits = stats_.in_flight_bytes == 0 ||
                      stats_.in_flight_bytes + waiting_.front().bytes <= config_.max_in_flight_bytes;
    if (e < 0 || !fits) return std::nullopt;
    Job next = std::move(waiting_.front());
    waiting_.pop_front();
    next.encoder = e;
    next.sent = Clock::now();
    EncoderPoolStats::Encoder& encoder = stats_.encoders[e];
    encoder.outstanding_items += num_items(next.prompt);
    stats_.in_flight_bytes += next.bytes;
    stats_.items[0] += next.prompt.images.count();
    stats_.items[1] += next.prompt.videos.count();
    // Registered before the send: the reply may come back before send_job returns.
    Job* job = &in_flight_.emplace(next.id, std::move(next)).first->second;
    return Action{.kind = Action::Kind::kJob, .rank = encoder.rank, .job = job};
  }
  if (stopping_) return Action{.kind = Action::Kind::kFinish};  // everything is sent
  return std::nullopt;
}

void RemoteEncoder::dispatch_loop() {
  for (bool finished = false; !finished;) {
    std::optional<Action> action;
    {
      std::unique_lock lock(mutex_);
      while (!(action = next_action())) wake_.wait(lock);
    }
    switch (action->kind) {
      case Action::Kind::kJoin:
        send_join(*channels_.jobs, action->rank);
        break;
      case Action::Kind::kStop:
        send_stop(*channels_.jobs, action->rank);
        break;
      case Action::Kind::kJob:
        // The job stays in in_flight_ until its reply: the receiver erases it only after this send (its reply
        // cannot come sooner), so the pointer is valid here.
        send_job(*channels_.jobs, action->rank, action->job->id, action->job->prompt);
        break;
      case Action::Kind::kFinish:
        finished = true;
        break;
    }
  }
  std::vector<int> known;  // every encoder that expects a stop from this front
  {
    const std::lock_guard lock(mutex_);
    for (size_t e = 0; e < routing_.size(); ++e) {
      if (routing_[e] == Routing::kRoutable || routing_[e] == Routing::kRetiring) known.push_back(stats_.encoders[e].rank);
      routing_[e] = Routing::kRetired;
    }
  }
  for (int rank : known) send_stop(*channels_.jobs, rank);
  {
    const std::lock_guard lock(mutex_);
    dispatcher_done_ = true;
  }
  wake_.notify_all();
}

void RemoteEncoder::receive_loop() {
  const auto finished = [this] {
    const std::lock_guard lock(mutex_);
    return dispatcher_done_ && in_flight_.empty();
  };
  if (config_.device.is_cuda()) cuda_set_device(config_.device.index);  // the rows land on the model's GPU
  while (true) {
    const std::optional<int> peer = wait_for_message(*channels_.replies, kReplyTag, finished);
    if (!peer) return;
    const ReceivedReply reply = recv_reply(*channels_.replies, *channels_.data, *peer, config_.rows_per_item,
                                           config_.hidden, config_.dtype, config_.device);
    Job job;
    {
      const std::lock_guard lock(mutex_);
      const auto it = in_flight_.find(reply.info.id);
      PLM_CHECK(it != in_flight_.end()) << "a reply from rank " << *peer << " to unknown request " << reply.info.id;
      job = std::move(it->second);
      in_flight_.erase(it);
      EncoderPoolStats::Encoder& e = stats_.encoders[job.encoder];
      e.outstanding_items -= num_items(job.prompt);
      e.queued_items = reply.info.queued_items;
      e.busy_fraction = reply.info.uptime_s > 0 ? reply.info.busy_s / reply.info.uptime_s : 0;
      stats_.in_flight_bytes -= job.bytes;
      stats_.embedding_bytes += reply.payload_bytes;
      ++stats_.transfers;
      ++stats_.jobs_done;
      stats_.transfer_s += reply.transfer_s;
      stats_.round_trip_s += std::chrono::duration<double>(Clock::now() - job.sent).count();
      for (int kind = 0; kind < 2; ++kind) {
        stats_.encoded[kind] += reply.info.encoded[kind];
        stats_.encode_s[kind] += reply.info.encode_s[kind];
      }
    }
    wake_.notify_all();
    deliver(std::move(job), reply);
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
    tiles.pixels = OwnedTensor();
  }
  job.done(std::move(job.prompt));
}

}  // namespace plm::serve::disagg
