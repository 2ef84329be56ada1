// Whole (unsharded) parameters of a tensor-parallel model: each split tensor all-gathered over the model's TP group
// and its ranks' slices put back in place by their TensorSlices (model/weights/tensor_slice.h); a tensor every
// rank holds whole is TP rank 0's (the ranks' copies are equal). Checkpoints, the HF export and the tests gather
// through it. Collective over the TP group: every rank passes values laid out alike and the same selection.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "model/plm_model.h"

namespace plm::model {

struct WholeParameter {
  std::string name;   // HF name
  OwnedTensor value;  // host, the whole HF tensor's shape (or its element count for a reshaped one), values' dtype
};

// values: this rank's parameters or anything laid out like them (a gradient or flat-buffer view; undefined
// tensors are skipped); select(name): which to gather (all when empty). On TP rank 0: the whole tensors in
// for_each_parameter order; elsewhere: empty.
std::vector<WholeParameter> gather_whole_parameters(const PlmModel& model, PlmWeights values,
                                                    const std::function<bool(const std::string&)>& select = {},
                                                    Stream s = {});

// Every pipeline stage's whole parameters on stage 0, stage after stage: each later stage sends `mine` (its TP rank
// 0's gather_whole_parameters) over `pp`, staged through `device` (where the group's tensors live). A name an
// earlier stage already gave (a tied head's copy of embed_tokens on the last stage) is dropped. Collective over
// `pp`: stage 0 returns them all, the other stages nothing.
std::vector<WholeParameter> gather_stages(distributed::Communicator& pp, Device device,
                                          std::vector<WholeParameter> mine, Stream s = {});

}  // namespace plm::model
