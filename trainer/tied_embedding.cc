#include "trainer/tied_embedding.h"

namespace plm::trainer {

std::unique_ptr<distributed::Communicator> tied_embedding_group(distributed::Communicator& world,
                                                                const distributed::ParallelDims& dims, bool tied) {
  if (dims.pp == 1 || !tied) return nullptr;
  const distributed::ParallelDims::Coordinates c = dims.coordinates(world.rank());
  const bool holds_copy = c.pp_index == 0 || c.pp_index == dims.pp - 1;
  // One color per (dp, tp) pair of copies; the stages between get a color of their own each.
  const int color = holds_copy ? c.dp_index * dims.tp + c.tp_index : dims.dp * dims.tp + world.rank();
  return world.split(color, c.pp_index, "tied_embedding");
}

}  // namespace plm::trainer
