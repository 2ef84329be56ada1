#include "model/whole_parameters.h"

#include "distributed/communicator.h"

namespace plm::model {

namespace {

struct Selected {
  std::string name;
  Tensor value;
  const TensorSlice* slice;
};

}  // namespace

std::vector<WholeParameter> gather_whole_parameters(const PlmModel& model, PlmWeights values,
                                                    const std::function<bool(const std::string&)>& select, Stream s) {
  distributed::Communicator& tp = model.parallel().tp_group();
  const bool root = tp.rank() == 0;
  std::vector<Selected> selected;
  std::vector<int32_t> parts;  // every split tensor's parts on this rank, in order
  values.for_each_parameter([&](const std::string& name, Tensor& t) {
    if (!t.defined() || (select && !select(name))) return;
    const TensorSlice& slice = model.tensor_slice(name);
    selected.push_back({name, t, &slice});
    if (!slice.whole()) parts.insert(parts.end(), slice.parts.begin(), slice.parts.end());
  });
  // Which blocks each rank holds (the same count of them on every rank: the tensors are split alike).
  OwnedTensor all_parts({tp.size() * static_cast<int64_t>(parts.size())}, DType::kI32);
  if (!parts.empty()) {
    const OwnedTensor mine = to_device(host_i32(parts), model.device());
    OwnedTensor gathered({all_parts.numel()}, DType::kI32, model.device());
    tp.all_gather(gathered, mine, s);
    all_parts = to_device(gathered, Device::cpu());
  }
  const int32_t* rank_parts = all_parts.data_as<int32_t>();

  std::vector<WholeParameter> whole;
  int64_t parts_seen = 0;
  for (const Selected& p : selected) {
    if (p.slice->whole()) {
      if (root) whole.push_back({p.name, to_device(p.value, Device::cpu())});
      continue;
    }
    const int64_t n = p.value.numel(), num_blocks = static_cast<int64_t>(p.slice->parts.size());
    OwnedTensor gathered({tp.size() * n}, p.value.dtype(), p.value.device());
    tp.all_gather(gathered, p.value.reshape({n}), s);
    if (root) {
      const OwnedTensor host = to_device(gathered, Device::cpu());
      OwnedTensor value(p.slice->whole_shape(p.value.shape()), p.value.dtype());
      for (int r = 0; r < tp.size(); ++r) {
        TensorSlice slice = *p.slice;
        const int32_t* first = rank_parts + r * static_cast<int64_t>(parts.size()) + parts_seen;
        slice.parts.assign(first, first + num_blocks);
        place_slice(value, host.view().slice(0, r * n, (r + 1) * n).reshape(p.value.shape()), slice);
      }
      whole.push_back({p.name, std::move(value)});
    }
    parts_seen += num_blocks;
  }
  return whole;
}

}  // namespace plm::model
