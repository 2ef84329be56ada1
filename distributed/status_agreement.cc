#include "distributed/status_agreement.h"

#include <cstdint>
#include <functional>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/cuda/runtime.h"
#include "core/tensor.h"

namespace plm::distributed {

namespace {

// Runs `op` on `host` (CPU) or on a copy of it on `device`, copied back and synchronised (CUDA).
void run_on_device(Tensor host, Device device, Stream s, const std::function<void(Tensor)>& op) {
  if (device.is_cpu()) {
    op(host);
    return;
  }
  OwnedTensor staged(host.shape(), host.dtype(), device);
  copy_tensor(staged, host, s);
  op(staged);
  copy_tensor(host, staged, s);
  cuda_stream_synchronize(s);
}

}  // namespace

absl::Status agree_on_status(Communicator& comm, const absl::Status& local, const std::string& rank_noun,
                             Device device, Stream s) {
  // size - rank for a failing rank, 0 for an OK one: the maximum names the lowest failing rank.
  int32_t flag = local.ok() ? 0 : comm.size() - comm.rank();
  run_on_device(Tensor(&flag, {1}, DType::kI32), device, s,
                [&](Tensor t) { comm.all_reduce(t, ReduceOp::kMax, s); });
  if (flag == 0) return absl::OkStatus();
  const int failing = comm.size() - flag;

  std::string message = comm.rank() == failing ? std::string(local.message()) : std::string();
  int32_t header[2] = {static_cast<int32_t>(local.code()), static_cast<int32_t>(message.size())};  // code, bytes
  run_on_device(Tensor(header, {2}, DType::kI32), device, s, [&](Tensor t) { comm.broadcast(t, failing, s); });
  message.resize(header[1]);
  if (!message.empty()) {
    run_on_device(Tensor(message.data(), {header[1]}, DType::kU8), device, s,
                  [&](Tensor t) { comm.broadcast(t, failing, s); });
  }
  return absl::Status(static_cast<absl::StatusCode>(header[0]),
                      absl::StrCat(rank_noun, " ", failing, " of ", comm.size(), ": ", message));
}

}  // namespace plm::distributed
