// RebalancePolicy: when `plm serve --disaggregate --rebalance` moves a rank between the pools. A move is due once
// the pool monitor's suggestion has asked for more ranks in the same pool for `windows` consecutive windows; a
// window without traffic, or one whose suggestion equals the current split or points the other way, starts the
// count again, and so does a move. One rank moves at a time: the highest rank of the pool that shrinks, never
// rank 0 (the coordinating front) and never a pool's last rank. Single-rank replicas only (decoder TP 1).
// A plain value; not thread-safe.
#pragma once

#include <optional>
#include <vector>

#include "serve/disagg/pool_layout.h"
#include "serve/disagg/pool_monitor.h"

namespace plm::serve::disagg {

struct RankMove {
  int rank = 0;
  PoolRole to = PoolRole::kDecoder;
  bool operator==(const RankMove&) const = default;
};

// The rank that leaves pool `from` (roles: per rank), or nullopt when that would empty it or it holds only rank 0.
std::optional<int> rank_to_move(const std::vector<PoolRole>& roles, PoolRole from);

class RebalancePolicy {
 public:
  explicit RebalancePolicy(int windows);

  // One monitor window's suggestion (encoder_ranks 0: no traffic) against the current roles; the move when due.
  std::optional<RankMove> observe(const SplitSuggestion& suggestion, const std::vector<PoolRole>& roles);
  void reset() { streak_ = 0; }
  int streak() const { return streak_; }

 private:
  int windows_;
  int streak_ = 0;                   // consecutive windows asking to grow `growing_`
  PoolRole growing_ = PoolRole::kEncoder;
};

}  // namespace plm::serve::disagg
