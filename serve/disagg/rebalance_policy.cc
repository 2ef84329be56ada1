#include "serve/disagg/rebalance_policy.h"

#include <algorithm>

#include "core/check.h"

namespace plm::serve::disagg {

std::optional<int> rank_to_move(const std::vector<PoolRole>& roles, PoolRole from) {
  if (std::count(roles.begin(), roles.end(), from) < 2) return std::nullopt;
  for (int rank = static_cast<int>(roles.size()) - 1; rank > 0; --rank) {
    if (roles[rank] == from) return rank;
  }
  return std::nullopt;
}

RebalancePolicy::RebalancePolicy(int windows) : windows_(windows) {
  PLM_CHECK_GE(windows_, 1) << "--rebalance-windows";
}

std::optional<RankMove> RebalancePolicy::observe(const SplitSuggestion& suggestion, const std::vector<PoolRole>& roles) {
  const int encoders = static_cast<int>(std::count(roles.begin(), roles.end(), PoolRole::kEncoder));
  if (suggestion.encoder_ranks == 0 || suggestion.encoder_ranks == encoders) {
    streak_ = 0;
    return std::nullopt;
  }
  const PoolRole growing = suggestion.encoder_ranks > encoders ? PoolRole::kEncoder : PoolRole::kDecoder;
  streak_ = streak_ > 0 && growing == growing_ ? streak_ + 1 : 1;
  growing_ = growing;
  if (streak_ < windows_) return std::nullopt;
  streak_ = 0;
  const PoolRole shrinking = growing == PoolRole::kEncoder ? PoolRole::kDecoder : PoolRole::kEncoder;
  const std::optional<int> rank = rank_to_move(roles, shrinking);
  if (!rank) return std::nullopt;
  return RankMove{.rank = *rank, .to = growing};
}

}  // namespace plm::serve::disagg
