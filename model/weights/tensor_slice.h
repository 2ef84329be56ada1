// TensorSlice: the part of a checkpoint tensor one rank holds, as the WeightLoader cut it (the loader records one
// per tensor it loads): dim `dim` cut into num_parts equal blocks, of which the rank holds `parts`, stacked in that
// order — one block for a tensor-parallel shard, three for a rank's q, k and v heads of a fused qkv, everything
// when num_parts is 1. Checkpoints and exports gather shards into whole tensors by these slices and take a rank's
// part of a whole tensor by them (trainer/), so what one TP layout saved reads at another.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace plm::model {

struct TensorSlice {
  int dim = 0;
  std::vector<int> parts = {0};
  int num_parts = 1;

  bool whole() const { return num_parts == 1; }
  // The whole tensor's shape, from the shape of this slice.
  Shape whole_shape(const Shape& slice_shape) const;
  // The ranks of a TP group of `tp` that hold this very slice, the blocks being spread evenly over the group:
  // tp * parts / num_parts — tp for a replicated tensor, tp / kv_heads for a replicated KV head, 1 for a shard.
  // They are consecutive ranks (model/parallel.h), the first of which counts the slice once (grad norm).
  int holders(int tp) const;
  bool operator==(const TensorSlice&) const = default;
};

using TensorSlices = std::map<std::string, TensorSlice>;  // by HF name

// part (the slice's shape) = the slice's blocks of `whole`, stacked.
void take_slice(Tensor part, Tensor whole, const TensorSlice& slice, Stream s = {});
// The blocks of `whole` that the slice covers = `part`'s.
void place_slice(Tensor whole, Tensor part, const TensorSlice& slice, Stream s = {});

}  // namespace plm::model
