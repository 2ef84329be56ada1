#include "serve/disagg/pool_layout.h"

#include "absl/strings/str_cat.h"

namespace plm::serve::disagg {

absl::StatusOr<PoolLayout> PoolLayout::create(const PoolLayoutConfig& c, int world_size) {
  if (c.encoder_ranks < 1 || c.decoder_ranks < 1 || c.decoder_tp < 1) {
    return absl::InvalidArgumentError(absl::StrCat("--encoder-ranks (", c.encoder_ranks, "), --decoder-ranks (",
                                                   c.decoder_ranks, ") and --decoder-tp (", c.decoder_tp,
                                                   ") must all be >= 1"));
  }
  if (c.encoder_ranks + c.decoder_ranks != world_size) {
    return absl::InvalidArgumentError(absl::StrCat("--encoder-ranks (", c.encoder_ranks, ") + --decoder-ranks (",
                                                   c.decoder_ranks, ") = ", c.encoder_ranks + c.decoder_ranks,
                                                   " ranks, but the job has ", world_size,
                                                   " (launch with mpirun -n ", c.encoder_ranks + c.decoder_ranks, ")"));
  }
  if (c.decoder_ranks % c.decoder_tp != 0) {
    return absl::InvalidArgumentError(absl::StrCat("--decoder-ranks (", c.decoder_ranks, ") is not a multiple of --decoder-tp (",
                                                   c.decoder_tp, ")"));
  }
  return PoolLayout(c);
}

}  // namespace plm::serve::disagg
