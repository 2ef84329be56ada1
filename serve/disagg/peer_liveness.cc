#include "serve/disagg/peer_liveness.h"

#include <algorithm>

#include "core/check.h"

namespace plm::serve::disagg {

namespace {

constexpr int kHeartbeatTag = 51;

// What every heartbeat carries: only ever read, so one buffer that lives as long as the process serves every send,
// including those to a dead peer that the transport never finishes.
int64_t g_beat = 1;

}  // namespace

PeerLiveness::PeerLiveness(distributed::Communicator& heartbeat, std::vector<int> peers, const PeerLivenessConfig& config)
    : comm_(heartbeat), config_(config) {
  PLM_CHECK(config_.interval_s > 0 && config_.timeout_s > config_.interval_s)
      << "heartbeat every " << config_.interval_s << " s with a timeout of " << config_.timeout_s << " s";
  const Clock::time_point now = Clock::now();
  for (int rank : peers) {
    peers_.push_back({.rank = rank, .last_heard = now, .alive = true, .watched = true, .beat = std::nullopt});
  }
  thread_ = std::thread([this] { loop(); });
}

PeerLiveness::~PeerLiveness() {
  {
    const std::lock_guard lock(mutex_);
    stop_ = true;
  }
  stop_cv_.notify_all();
  thread_.join();
}

void PeerLiveness::watch(int peer) {
  const std::lock_guard lock(mutex_);
  const auto p = std::find_if(peers_.begin(), peers_.end(), [peer](const Peer& x) { return x.rank == peer; });
  if (p == peers_.end()) {
    peers_.push_back({.rank = peer, .last_heard = Clock::now(), .alive = true, .watched = true, .beat = std::nullopt});
    return;
  }
  p->last_heard = Clock::now();
  p->alive = true;
  p->watched = true;
}

void PeerLiveness::forget(int peer) {
  const std::lock_guard lock(mutex_);
  for (Peer& p : peers_) {
    if (p.rank == peer) p.watched = false;
  }
}

bool PeerLiveness::alive(int peer) const {
  const std::lock_guard lock(mutex_);
  for (const Peer& p : peers_) {
    if (p.rank == peer) return p.alive;
  }
  PLM_CHECK(false) << "rank " << peer << " is not a watched peer";
  return false;
}

void PeerLiveness::loop() {
  const auto interval = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(config_.interval_s));
  std::unique_lock lock(mutex_);
  while (!stop_) {
    lock.unlock();
    beat_and_listen();
    lock.lock();
    const std::vector<int> dead = newly_dead(Clock::now());
    if (!dead.empty() && config_.on_death) {
      lock.unlock();
      for (int peer : dead) config_.on_death(peer);
      lock.lock();
    }
    // Listening more often than beating: a heartbeat waiting in the transport is taken within a fifth of an interval.
    stop_cv_.wait_for(lock, interval / 5, [this] { return stop_; });
  }
}

void PeerLiveness::beat_and_listen() {
  const Clock::time_point now = Clock::now();
  const auto interval = std::chrono::duration<double>(config_.interval_s);
  int64_t received = 0;
  while (const std::optional<int> peer = comm_.probe(kHeartbeatTag)) {
    comm_.recv(Tensor(&received, {1}, DType::kI64), *peer, kHeartbeatTag);  // probed: it is there
    const std::lock_guard lock(mutex_);
    for (Peer& p : peers_) {
      if (p.rank == *peer) p.last_heard = Clock::now();
    }
  }
  if (now - last_beat_ < interval) return;
  last_beat_ = now;
  const std::lock_guard lock(mutex_);
  for (Peer& p : peers_) {
    // A peer not watched, or that takes no heartbeat, gets no more.
    if (!p.watched || !p.alive || (p.beat && !p.beat->done())) continue;
    p.beat.emplace(start_send(comm_, Tensor(&g_beat, {1}, DType::kI64), p.rank, kHeartbeatTag));
  }
}

std::vector<int> PeerLiveness::newly_dead(Clock::time_point now) {
  std::vector<int> dead;
  const auto timeout = std::chrono::duration<double>(config_.timeout_s);
  for (Peer& p : peers_) {
    if (p.watched && p.alive && now - p.last_heard > timeout) {
      p.alive = false;
      dead.push_back(p.rank);
    }
  }
  return dead;
}

}  // namespace plm::serve::disagg
