// FlatParameters: one contiguous buffer holding a tensor for every (selected) parameter of a PlmWeights
// layout, back to back in for_each_parameter order, and a PlmWeights whose views point into it. Training
// keeps its gradients, fp32 master weights and AdamW moments in such buffers, so one flat view serves the
// data-parallel all-reduce / reduce-scatter and ZeRO's contiguous per-rank ranges. Parameters that are not
// selected (frozen) stay undefined in views(). Owns its memory; not copyable.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "model/plm_model.h"

namespace plm::model {

struct FlatEntry {
  std::string name;    // HF name
  Shape shape;
  int64_t offset = 0;  // first element in the flat buffer
  int64_t numel = 0;
};

class FlatParameters {
 public:
  // A buffer shaped like `layout`'s parameters for which select(name) is true (all when empty), zeroed.
  FlatParameters(PlmWeights layout, DType dtype, Device device,
                 const std::function<bool(const std::string&)>& select = {});
  FlatParameters(FlatParameters&&) noexcept = default;
  FlatParameters& operator=(FlatParameters&&) noexcept = default;
  FlatParameters(const FlatParameters&) = delete;
  FlatParameters& operator=(const FlatParameters&) = delete;

  const PlmWeights& views() const { return views_; }
  Tensor flat() const { return buffer_.view(); }  // (numel) of every selected parameter
  const std::vector<FlatEntry>& entries() const { return entries_; }
  int64_t numel() const { return buffer_.numel(); }
  // The entry named `name`, or null.
  const FlatEntry* find(const std::string& name) const;

 private:
  OwnedTensor buffer_;
  PlmWeights views_;
  std::vector<FlatEntry> entries_;
};

}  // namespace plm::model
