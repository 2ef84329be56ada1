#include "distributed/parallel_dims.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/check.h"

namespace plm::distributed {

absl::StatusOr<ParallelDims> ParallelDims::for_world(int world_size, int tp, int pp) {
  if (tp < 1 || pp < 1) {
    return absl::InvalidArgumentError(absl::StrCat("tp (", tp, ") and pp (", pp, ") must be at least 1"));
  }
  if (world_size % (tp * pp) != 0) {
    return absl::InvalidArgumentError(absl::StrCat("world size ", world_size, " is not divisible by tp(", tp,
                                                   ") * pp(", pp, ") = ", tp * pp));
  }
  return ParallelDims{tp, pp, world_size / (tp * pp)};
}

ParallelDims::Coordinates ParallelDims::coordinates(int rank) const {
  PLM_CHECK(rank >= 0 && rank < world_size()) << "rank " << rank << " outside world of " << world_size();
  return {rank % tp, (rank / tp) % pp, rank / (tp * pp)};
}

int ParallelDims::rank_of(const Coordinates& c) const { return (c.dp_index * pp + c.pp_index) * tp + c.tp_index; }

}  // namespace plm::distributed
