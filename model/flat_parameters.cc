#include "model/flat_parameters.h"

#include "core/kernels/ops.h"

namespace plm::model {

FlatParameters::FlatParameters(PlmWeights layout, DType dtype, Device device,
                               const std::function<bool(const std::string&)>& select) {
  int64_t total = 0;
  layout.for_each_parameter([&](const std::string& name, Tensor& t) {
    if (select && !select(name)) return;
    entries_.push_back({name, t.shape(), total, t.numel()});
    total += t.numel();
  });
  buffer_ = OwnedTensor({total}, dtype, device);
  if (total > 0) fill(buffer_, 0.0f);
  views_ = std::move(layout);
  size_t next = 0;
  views_.for_each_parameter([&](const std::string& name, Tensor& t) {
    if (next < entries_.size() && entries_[next].name == name) {
      const FlatEntry& e = entries_[next++];
      t = buffer_.view().slice(0, e.offset, e.offset + e.numel).reshape(e.shape);
    } else {
      t = Tensor();
    }
  });
}

const FlatEntry* FlatParameters::find(const std::string& name) const {
  for (const FlatEntry& e : entries_) {
    if (e.name == name) return &e;
  }
  return nullptr;
}

}  // namespace plm::model
