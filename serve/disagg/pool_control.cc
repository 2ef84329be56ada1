#include "serve/disagg/pool_control.h"

#include <algorithm>
#include <array>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/check.h"
#include "serve/disagg/prometheus_text.h"
#include "serve/disagg/wire.h"

namespace plm::serve::disagg {

namespace {

constexpr int kControlTag = 51;

}  // namespace

PoolControl::PoolControl(distributed::Communicator& control, const PoolLayout& layout, const PoolControlConfig& config)
    : control_(control), config_(config), self_(control.rank()) {
  PLM_CHECK_EQ(control_.size(), layout.world_size());
  for (int rank = 0; rank < layout.world_size(); ++rank) roles_.push_back(layout.role(rank));
  if (!config_.rebalance) return;
  PLM_CHECK_EQ(layout.decoder_tp(), 1) << "--rebalance moves single-rank replicas only";
  if (self_ == 0) {
    policy_.emplace(config_.rebalance_windows);
    listener_ = std::thread([this] { coordinate(); });
  } else {
    listener_ = std::thread([this] { follow(); });
  }
}

PoolControl::~PoolControl() {
  {
    const std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  if (listener_.joinable()) listener_.join();
  // The last messages (the job's end) reach live ranks at once; one to a dead rank never finishes and is dropped.
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  while (std::chrono::steady_clock::now() < until &&
         !std::all_of(sending_.begin(), sending_.end(), [](WireMessage& w) { return finished(w); })) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

PoolRole PoolControl::role(int rank) const {
  const std::lock_guard lock(mutex_);
  return roles_.at(rank);
}

std::vector<int> PoolControl::encoder_ranks() const {
  const std::lock_guard lock(mutex_);
  std::vector<int> ranks;
  for (int rank = 0; rank < static_cast<int>(roles_.size()); ++rank) {
    if (roles_[rank] == PoolRole::kEncoder && rank != moving_) ranks.push_back(rank);
  }
  return ranks;
}

int PoolControl::num_decoder_ranks() const {
  const std::lock_guard lock(mutex_);
  int n = 0;
  for (int rank = 0; rank < static_cast<int>(roles_.size()); ++rank) {
    n += roles_[rank] == PoolRole::kDecoder && rank != moving_ ? 1 : 0;
  }
  return n;
}

void PoolControl::attach_encoders(RemoteEncoder* encoders) {
  const std::lock_guard lock(mutex_);
  encoders_ = encoders;
}

void PoolControl::attach_drain(std::function<void()> drain) {
  const std::lock_guard lock(mutex_);
  drain_ = std::move(drain);
  if (drain_ && drain_asked_) drain_();  // the move or the end came while the server was starting
}

bool PoolControl::encoder_may_exit() const {
  if (!config_.rebalance) return true;
  const std::lock_guard lock(mutex_);
  return leaving_;
}

void PoolControl::rejoined() {
  {
    const std::lock_guard lock(mutex_);
    if (moving_ != self_) return;
    rejoin_pending_ = true;
  }
  changed_.notify_all();
}

void PoolControl::observe(const SplitSuggestion& suggestion) {
  const std::lock_guard lock(mutex_);
  if (!policy_) return;
  if (finishing_ || moving_ >= 0 || pending_move_) {
    policy_->reset();  // a move in progress: the next one needs its own stable windows
    return;
  }
  const std::optional<RankMove> move = policy_->observe(suggestion, roles_);
  if (!move) return;
  pending_move_ = Message{.kind = Kind::kMove, .rank = move->rank, .role = move->to};
  if (config_.log) {
    config_.log(absl::StrCat("plm serve: rebalance: the suggested split (", suggestion.encoder_ranks, " encoder : ",
                             suggestion.decoder_ranks, " decoder ranks) held for ", config_.rebalance_windows,
                             " windows; moving rank ", move->rank, " to the ", pool_name(move->to), " pool"));
  }
}

void PoolControl::finish() {
  std::unique_lock lock(mutex_);
  if (!config_.rebalance) return;
  finishing_ = true;
  changed_.wait(lock, [&] { return ended_; });
}

void PoolControl::send(int peer, const Message& m) {
  std::erase_if(sending_, [](WireMessage& w) { return finished(w); });
  auto h = std::make_shared<std::array<int64_t, 3>>(
      std::array<int64_t, 3>{static_cast<int64_t>(m.kind), m.rank, m.role == PoolRole::kEncoder ? 1 : 0});
  WireMessage w;
  w.transfers.push_back(start_send(control_, Tensor(h->data(), {3}, DType::kI64), peer, kControlTag));
  w.buffers.push_back(std::move(h));
  sending_.push_back(std::move(w));
}

void PoolControl::send_to_others(const Message& m) {
  for (int peer = 0; peer < control_.size(); ++peer) {
    if (peer != self_) send(peer, m);
  }
}

PoolControl::Message PoolControl::recv(int peer) {
  std::array<int64_t, 3> h{};
  control_.recv(Tensor(h.data(), {3}, DType::kI64), peer, kControlTag);
  PLM_CHECK(h[0] >= 1 && h[0] <= 4) << "control message kind " << h[0] << " from rank " << peer;
  return {.kind = static_cast<Kind>(h[0]), .rank = static_cast<int>(h[1]),
          .role = h[2] == 1 ? PoolRole::kEncoder : PoolRole::kDecoder};
}

void PoolControl::apply(const Message& m) {
  const bool drain_front = (m.kind == Kind::kMove && m.rank == self_ && m.role == PoolRole::kEncoder) || m.kind == Kind::kEnd;
  switch (m.kind) {
    case Kind::kMove:
      roles_[m.rank] = m.role;
      moving_ = m.rank;
      move_started_ = std::chrono::steady_clock::now();
      if (m.rank == self_) {
        leaving_ = m.role == PoolRole::kDecoder;  // an encoder's worker ends as the fronts stop
        drain_asked_ = m.role == PoolRole::kEncoder;
      }
      // A leaving encoder: no new jobs; it hears this front's stop once its jobs are answered.
      if (m.rank != self_ && m.role == PoolRole::kDecoder && encoders_ != nullptr) encoders_->retire_encoder(m.rank);
      break;
    case Kind::kMoved:
      if (m.rank != self_ && m.role == PoolRole::kEncoder && encoders_ != nullptr) encoders_->add_encoder(m.rank);
      if (self_ == 0 && config_.log) {
        const double took_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - move_started_).count();
        int encoders = 0;
        for (PoolRole r : roles_) encoders += r == PoolRole::kEncoder ? 1 : 0;
        config_.log(absl::StrFormat("plm serve: rebalance: rank %d rejoined as %s after %.1f s; pools now %d encoder : "
                                    "%d decoder ranks (role switch %d)",
                                    m.rank, pool_name(m.role), took_s, encoders,
                                    static_cast<int>(roles_.size()) - encoders, moves_done_ + 1));
      }
      moving_ = -1;
      ++moves_done_;
      break;
    case Kind::kEnd:
      ended_ = true;
      leaving_ = true;
      drain_asked_ = true;
      break;
    case Kind::kRejoined:
      PLM_CHECK(false) << "rank " << self_ << " got a rejoined message meant for rank 0";
      break;
  }
  if (drain_front && drain_) drain_();
}

void PoolControl::coordinate() {
  while (true) {
    const std::optional<int> peer = wait_for_message(control_, kControlTag, [this] {
      const std::lock_guard lock(mutex_);
      return pending_move_.has_value() || (finishing_ && moving_ < 0) || stopping_;
    });
    std::unique_lock lock(mutex_);
    if (peer) {
      lock.unlock();
      const Message rejoined = recv(*peer);
      PLM_CHECK(rejoined.kind == Kind::kRejoined && rejoined.rank == *peer) << "rank " << *peer << ": unexpected control message";
      lock.lock();
      const Message moved{.kind = Kind::kMoved, .rank = rejoined.rank, .role = roles_[rejoined.rank]};
      apply(moved);
      lock.unlock();
      send_to_others(moved);
    } else if (pending_move_) {
      const Message move = *pending_move_;
      pending_move_.reset();
      apply(move);
      lock.unlock();
      send_to_others(move);
    } else if (finishing_ && moving_ < 0) {
      lock.unlock();
      send_to_others(Message{.kind = Kind::kEnd});
      lock.lock();
      apply(Message{.kind = Kind::kEnd});
      changed_.notify_all();
      return;
    } else {
      return;  // stopping
    }
  }
}

void PoolControl::follow() {
  while (true) {
    const std::optional<int> peer = wait_for_message(control_, kControlTag, [this] {
      const std::lock_guard lock(mutex_);
      return rejoin_pending_ || stopping_;
    });
    std::unique_lock lock(mutex_);
    if (rejoin_pending_) {
      rejoin_pending_ = false;
      const Message rejoined{.kind = Kind::kRejoined, .rank = self_, .role = roles_[self_]};
      lock.unlock();
      send(0, rejoined);
      continue;
    }
    if (!peer) return;  // stopping
    lock.unlock();
    const Message m = recv(*peer);
    lock.lock();
    apply(m);
    if (m.kind == Kind::kEnd) return;
  }
}

std::string PoolControl::render() const {
  const std::lock_guard lock(mutex_);
  std::array<int, 2> ranks{};  // decoder, encoder
  for (int rank = 0; rank < static_cast<int>(roles_.size()); ++rank) {
    if (rank != moving_) ++ranks[roles_[rank] == PoolRole::kEncoder ? 1 : 0];
  }
  std::string out;
  metric(out, "plm_disagg_pool_ranks", "gauge", "Ranks per pool of this job (a rank moving between pools is in neither)");
  sample(out, "plm_disagg_pool_ranks", ranks[0], "pool=\"decoder\"");
  sample(out, "plm_disagg_pool_ranks", ranks[1], "pool=\"encoder\"");
  metric(out, "plm_disagg_role_switches_total", "counter", "Ranks moved between the pools (--rebalance), completed");
  sample(out, "plm_disagg_role_switches_total", moves_done_);
  metric(out, "plm_disagg_role_switch_in_progress", "gauge", "1 while a rank drains, reloads and rejoins in its new pool");
  sample(out, "plm_disagg_role_switch_in_progress", moving_ >= 0 ? 1 : 0);
  return out;
}

}  // namespace plm::serve::disagg
