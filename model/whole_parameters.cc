#include "model/whole_parameters.h"

#include <cstring>
#include <set>

#include "distributed/communicator.h"

namespace plm::model {

namespace {

// A parameter's description on the wire: name length, dtype, rank, dims (padded).
constexpr int64_t kHeaderSize = 3 + kMaxRank;

void send_host(distributed::Communicator& pp, Tensor t, Device device, int tag, Stream s) {
  pp.send(to_device(t, device), 0, tag, s);
}

OwnedTensor recv_host(distributed::Communicator& pp, Shape shape, DType dtype, Device device, int from, int tag,
                      Stream s) {
  OwnedTensor t(shape, dtype, device);
  pp.recv(t, from, tag, s);
  return to_device(t, Device::cpu());
}

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

std::vector<WholeParameter> gather_stages(distributed::Communicator& pp, Device device,
                                          std::vector<WholeParameter> mine, Stream s) {
  constexpr int kTag = 201;
  if (pp.rank() != 0) {
    OwnedTensor count({1}, DType::kI64);
    count.data_as<int64_t>()[0] = static_cast<int64_t>(mine.size());
    send_host(pp, count, device, kTag, s);
    for (const WholeParameter& p : mine) {
      const Shape& shape = p.value.shape();
      OwnedTensor header({kHeaderSize}, DType::kI64);
      int64_t* h = header.data_as<int64_t>();
      std::fill(h, h + kHeaderSize, 0);
      h[0] = static_cast<int64_t>(p.name.size());
      h[1] = static_cast<int64_t>(p.value.dtype());
      h[2] = shape.rank();
      for (int d = 0; d < shape.rank(); ++d) h[3 + d] = shape[d];
      send_host(pp, header, device, kTag, s);
      OwnedTensor name({static_cast<int64_t>(p.name.size())}, DType::kU8);
      std::memcpy(name.data_as<uint8_t>(), p.name.data(), p.name.size());
      send_host(pp, name, device, kTag, s);
      send_host(pp, p.value, device, kTag, s);
    }
    return {};
  }
  std::set<std::string> names;
  for (const WholeParameter& p : mine) names.insert(p.name);
  for (int stage = 1; stage < pp.size(); ++stage) {
    const int64_t count = recv_host(pp, {1}, DType::kI64, device, stage, kTag, s).data_as<int64_t>()[0];
    for (int64_t i = 0; i < count; ++i) {
      const OwnedTensor header = recv_host(pp, {kHeaderSize}, DType::kI64, device, stage, kTag, s);
      const int64_t* h = header.data_as<int64_t>();
      const OwnedTensor name_bytes = recv_host(pp, {h[0]}, DType::kU8, device, stage, kTag, s);
      std::string name(reinterpret_cast<const char*>(name_bytes.data_as<uint8_t>()), static_cast<size_t>(h[0]));
      const Shape shape(h + 3, h + 3 + h[2]);
      OwnedTensor value = recv_host(pp, shape, static_cast<DType>(h[1]), device, stage, kTag, s);
      if (names.insert(name).second) mine.push_back({std::move(name), std::move(value)});
    }
  }
  return mine;
}

}  // namespace plm::model
