// PoolLayout: how one disaggregated-serving job (serve/README.md, "Disaggregated serving") splits its ranks.
// Ranks [0, decoder_ranks) form the decoder pool, in replicas of decoder_tp adjacent ranks whose first rank is
// the replica's front (HTTP server, engine, TP leader); ranks [decoder_ranks, world) form the encoder pool, one
// vision tower + projector replica per rank. Decoders first so that rank 0 is a front, as in `plm serve --tp`.
// A plain value; thread-safe.
#pragma once

#include "absl/status/statusor.h"

namespace plm::serve::disagg {

enum class PoolRole { kDecoder, kEncoder };

// "decoder" / "encoder", for messages.
inline const char* pool_name(PoolRole role) {
  switch (role) {
    case PoolRole::kDecoder:
      return "decoder";
    case PoolRole::kEncoder:
      return "encoder";
  }
  return "?";
}

struct PoolLayoutConfig {
  int encoder_ranks = 1;
  int decoder_ranks = 1;
  int decoder_tp = 1;
};

class PoolLayout {
 public:
  // InvalidArgument (with the arithmetic) when the counts do not fill `world_size` or do not divide.
  static absl::StatusOr<PoolLayout> create(const PoolLayoutConfig& config, int world_size);

  int world_size() const { return config_.encoder_ranks + config_.decoder_ranks; }
  int num_encoders() const { return config_.encoder_ranks; }
  int num_decoder_ranks() const { return config_.decoder_ranks; }
  int decoder_tp() const { return config_.decoder_tp; }
  int num_fronts() const { return config_.decoder_ranks / config_.decoder_tp; }

  PoolRole role(int rank) const { return rank < config_.decoder_ranks ? PoolRole::kDecoder : PoolRole::kEncoder; }
  bool is_front(int rank) const { return role(rank) == PoolRole::kDecoder && rank % config_.decoder_tp == 0; }
  int decoder_replica(int rank) const { return rank / config_.decoder_tp; }  // decoder ranks only
  int front_rank(int replica) const { return replica * config_.decoder_tp; }
  int encoder_index(int rank) const { return rank - config_.decoder_ranks; }  // encoder ranks only
  int encoder_rank(int index) const { return config_.decoder_ranks + index; }

 private:
  explicit PoolLayout(const PoolLayoutConfig& config) : config_(config) {}
  PoolLayoutConfig config_;
};

}  // namespace plm::serve::disagg
