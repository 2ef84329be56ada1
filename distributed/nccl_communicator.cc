#include "distributed/nccl_communicator.h"

#include <cuda_runtime.h>
#include <nccl.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <numeric>
#include <thread>
#include <vector>

#include "core/check.h"
#include "core/cuda/cuda_check.h"
#include "distributed/mpi_communicator.h"
#include "distributed/watchdog.h"

namespace plm::distributed {

namespace {

constexpr std::chrono::seconds kDefaultTimeout{300};

ncclDataType_t nccl_type(DType dtype) {
  switch (dtype) {
    case DType::kF32: return ncclFloat32;
    case DType::kBF16: return ncclBfloat16;
    case DType::kF16: return ncclFloat16;
    case DType::kI32: return ncclInt32;
    case DType::kI64: return ncclInt64;
    case DType::kU8: return ncclUint8;
  }
  return ncclFloat32;
}

ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum: return ncclSum;
    case ReduceOp::kAvg: return ncclAvg;
    case ReduceOp::kMax: return ncclMax;
  }
  return ncclSum;
}

cudaStream_t as_cuda(Stream s) { return static_cast<cudaStream_t>(s.handle); }

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(ncclComm_t comm, int device, std::string name) : comm_(comm), device_(device), name_(std::move(name)) {
    ncclCommUserRank(comm_, &rank_);
    ncclCommCount(comm_, &size_);
    PLM_CUDA_CHECK(cudaSetDevice(device_));
    PLM_CUDA_CHECK(cudaEventCreateWithFlags(&last_op_done_, cudaEventDisableTiming));
    PLM_CUDA_CHECK(cudaStreamCreateWithFlags(&p2p_stream_, cudaStreamNonBlocking));
    timeout_ = CommWatchdog::timeout_from_env(kDefaultTimeout);
    poller_ = std::thread([this] { poll(); });
  }

  ~NcclCommunicator() override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    stop_cv_.notify_all();
    poller_.join();
    cudaEventDestroy(last_op_done_);
    cudaStreamDestroy(p2p_stream_);
    ncclCommDestroy(comm_);
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string name() const override { return name_; }

  void all_reduce(Tensor t, ReduceOp op, Stream s) override {
    check_device(t, "all_reduce");
    check(ncclAllReduce(t.data(), t.data(), t.numel(), nccl_type(t.dtype()), nccl_op(op), comm_, as_cuda(s)),
          "all_reduce");
    mark_enqueued(s, "all_reduce");
  }

  // Uneven gather as one group of broadcasts, one rooted at each rank.
  void all_gather(Tensor out, Tensor in, const std::vector<int64_t>& counts, Stream s) override {
    check_device(out, "all_gather");
    check_device(in, "all_gather");
    const std::vector<int64_t> offsets = check_counts(counts, out.numel(), in.numel(), "all_gather");
    const size_t elem = dtype_size(in.dtype());
    check(ncclGroupStart(), "all_gather");
    for (int r = 0; r < size_; ++r) {
      char* dst = static_cast<char*>(out.data()) + offsets[r] * elem;
      check(ncclBroadcast(r == rank_ ? in.data() : dst, dst, counts[r], nccl_type(in.dtype()), r, comm_, as_cuda(s)),
            "all_gather");
    }
    check(ncclGroupEnd(), "all_gather");
    mark_enqueued(s, "all_gather");
  }

  // Uneven scatter as one group of reductions, rank r receiving slice r.
  void reduce_scatter(Tensor out, Tensor in, const std::vector<int64_t>& counts, ReduceOp op, Stream s) override {
    check_device(out, "reduce_scatter");
    check_device(in, "reduce_scatter");
    const std::vector<int64_t> offsets = check_counts(counts, in.numel(), out.numel(), "reduce_scatter");
    const size_t elem = dtype_size(in.dtype());
    check(ncclGroupStart(), "reduce_scatter");
    for (int r = 0; r < size_; ++r) {
      const char* src = static_cast<const char*>(in.data()) + offsets[r] * elem;
      check(ncclReduce(src, r == rank_ ? out.data() : nullptr, counts[r], nccl_type(in.dtype()), nccl_op(op), r, comm_,
                       as_cuda(s)),
            "reduce_scatter");
    }
    check(ncclGroupEnd(), "reduce_scatter");
    mark_enqueued(s, "reduce_scatter");
  }

  void broadcast(Tensor t, int root, Stream s) override {
    check_device(t, "broadcast");
    check(ncclBroadcast(t.data(), t.data(), t.numel(), nccl_type(t.dtype()), root, comm_, as_cuda(s)), "broadcast");
    mark_enqueued(s, "broadcast");
  }

  void send(Tensor t, int peer, int /*tag*/, Stream s) override {
    check_device(t, "send");
    check(ncclSend(t.data(), t.numel(), nccl_type(t.dtype()), peer, comm_, as_cuda(s)), "send");
    mark_enqueued(s, "send");
  }

  void recv(Tensor t, int peer, int /*tag*/, Stream s) override {
    check_device(t, "recv");
    check(ncclRecv(t.data(), t.numel(), nccl_type(t.dtype()), peer, comm_, as_cuda(s)), "recv");
    mark_enqueued(s, "recv");
  }

  std::optional<int> probe(int tag) override {
    PLM_CHECK(false) << "probe (tag " << tag << ") on NCCL group " << name_
                     << ": NCCL cannot look at a message before its recv; probe the MPI group that carries the headers";
    return std::nullopt;
  }

  P2pRequest isend(Tensor t, int peer, int /*tag*/, Stream s) override {
    check_device(t, "isend");
    return start_p2p(s, "isend", [&](cudaStream_t side) {
      return ncclSend(t.data(), t.numel(), nccl_type(t.dtype()), peer, comm_, side);
    });
  }

  P2pRequest irecv(Tensor t, int peer, int /*tag*/, Stream s) override {
    check_device(t, "irecv");
    return start_p2p(s, "irecv", [&](cudaStream_t side) {
      return ncclRecv(t.data(), t.numel(), nccl_type(t.dtype()), peer, comm_, side);
    });
  }

  // A one-element all-reduce, waited for on the host.
  void barrier() override {
    float* scratch = nullptr;
    PLM_CUDA_CHECK(cudaMalloc(&scratch, sizeof(float)));
    check(ncclAllReduce(scratch, scratch, 1, ncclFloat32, ncclSum, comm_, nullptr), "barrier");
    mark_enqueued(Stream{}, "barrier");
    PLM_CUDA_CHECK(cudaStreamSynchronize(nullptr));
    PLM_CUDA_CHECK(cudaFree(scratch));
  }

  std::unique_ptr<Communicator> split(int color, int key, const std::string& name) override {
    ncclComm_t sub = nullptr;
    check(ncclCommSplit(comm_, color, key, &sub, nullptr), "split");
    return std::make_unique<NcclCommunicator>(sub, device_, name);
  }

 private:
  // A transfer on the side stream: wait() orders the caller's stream after it.
  class PendingTransfer final : public P2pRequest::Pending {
   public:
    PendingTransfer(cudaEvent_t done, Stream s) : done_(done), s_(s) {}
    ~PendingTransfer() override { cudaEventDestroy(done_); }
    void wait() override { PLM_CUDA_CHECK(cudaStreamWaitEvent(as_cuda(s_), done_, 0)); }
    // Finished on the device; a receive's data is then visible to any stream. NCCL transfers cannot be
    // cancelled, so abandon() only stops looking at one (its buffer may still be touched).
    bool test() override {
      const cudaError_t state = cudaEventQuery(done_);
      if (state == cudaErrorNotReady) return false;
      PLM_CUDA_CHECK(state);
      return true;
    }

   private:
    cudaEvent_t done_;
    const Stream s_;
  };

  // Runs `op` on the side stream after the work enqueued on `s` so far (the tensor is ready there).
  template <typename Op>
  P2pRequest start_p2p(Stream s, const char* name, const Op& op) {
    cudaEvent_t ready = nullptr, done = nullptr;
    PLM_CUDA_CHECK(cudaEventCreateWithFlags(&ready, cudaEventDisableTiming));
    PLM_CUDA_CHECK(cudaEventCreateWithFlags(&done, cudaEventDisableTiming));
    PLM_CUDA_CHECK(cudaEventRecord(ready, as_cuda(s)));
    PLM_CUDA_CHECK(cudaStreamWaitEvent(p2p_stream_, ready, 0));
    PLM_CUDA_CHECK(cudaEventDestroy(ready));
    check(op(p2p_stream_), name);
    PLM_CUDA_CHECK(cudaEventRecord(done, p2p_stream_));
    mark_enqueued(Stream{p2p_stream_}, name);
    return P2pRequest(std::make_unique<PendingTransfer>(done, s));
  }

  std::string describe(const std::string& op) const {
    return "NCCL " + op + " on group '" + name_ + "' (rank " + std::to_string(rank_) + " of " +
           std::to_string(size_) + ", cuda:" + std::to_string(device_) + ")";
  }

  void check(ncclResult_t result, const char* op) const {
    if (result == ncclSuccess) return;
    abort_job(describe(op) + " failed: " + ncclGetErrorString(result) + " (" + ncclGetLastError(comm_) + ")");
  }

  void check_device(const Tensor& t, const char* op) const {
    PLM_CHECK(t.is_cuda() && t.device().index == device_ && t.is_contiguous())
        << op << " on NCCL group " << name_ << " needs a contiguous tensor on cuda:" << device_ << ", got "
        << t.describe();
  }

  std::vector<int64_t> check_counts(const std::vector<int64_t>& counts, int64_t total, int64_t own,
                                    const char* op) const {
    PLM_CHECK_EQ(static_cast<int>(counts.size()), size_) << op << " on " << name_ << ": one count per rank";
    std::vector<int64_t> offsets(counts.size(), 0);
    std::exclusive_scan(counts.begin(), counts.end(), offsets.begin(), int64_t{0});
    PLM_CHECK_EQ(offsets.back() + counts.back(), total) << op << " on " << name_ << ": counts do not add up";
    PLM_CHECK_EQ(counts[rank_], own) << op << " on " << name_ << ": this rank's count";
    return offsets;
  }

  // Records completion of the newest operation for the poller.
  void mark_enqueued(Stream s, const char* op) {
    std::lock_guard<std::mutex> lock(mutex_);
    PLM_CUDA_CHECK(cudaEventRecord(last_op_done_, as_cuda(s)));
    last_op_ = op;
    last_enqueued_ = std::chrono::steady_clock::now();
    pending_ = true;
  }

  void poll() {
    PLM_CUDA_CHECK(cudaSetDevice(device_));
    std::unique_lock<std::mutex> lock(mutex_);
    while (!stop_cv_.wait_for(lock, std::chrono::seconds(1), [this] { return stop_; })) {
      ncclResult_t async_error = ncclSuccess;
      ncclCommGetAsyncError(comm_, &async_error);
      if (async_error != ncclSuccess && async_error != ncclInProgress) {
        ncclCommAbort(comm_);
        abort_job(describe(last_op_) + ": asynchronous NCCL error " + ncclGetErrorString(async_error));
      }
      if (!pending_) continue;
      if (cudaEventQuery(last_op_done_) == cudaSuccess) {
        pending_ = false;
      } else if (std::chrono::steady_clock::now() - last_enqueued_ > timeout_) {
        ncclCommAbort(comm_);
        abort_job_on_stall(describe(last_op_) + " did not complete within " + std::to_string(timeout_.count()) +
                  " s (a peer rank died, hangs, or runs a different sequence of collectives)");
      }
    }
  }

  ncclComm_t comm_;
  const int device_;
  const std::string name_;
  int rank_ = 0;
  int size_ = 1;
  std::chrono::seconds timeout_{kDefaultTimeout};

  std::mutex mutex_;
  std::condition_variable stop_cv_;
  bool stop_ = false;
  cudaEvent_t last_op_done_ = nullptr;
  cudaStream_t p2p_stream_ = nullptr;  // isend / irecv, in posting order
  const char* last_op_ = "none";
  bool pending_ = false;
  std::chrono::steady_clock::time_point last_enqueued_;
  std::thread poller_;
};

}  // namespace

std::unique_ptr<Communicator> nccl_communicator(Communicator& bootstrap, int device, const std::string& name) {
  PLM_CUDA_CHECK(cudaSetDevice(device));
  ncclUniqueId id{};
  if (bootstrap.rank() == 0) {
    const ncclResult_t r = ncclGetUniqueId(&id);
    if (r != ncclSuccess) abort_job(std::string("ncclGetUniqueId failed: ") + ncclGetErrorString(r));
  }
  bootstrap.broadcast(Tensor(&id, {static_cast<int64_t>(sizeof(id))}, DType::kU8), 0);
  ncclComm_t comm = nullptr;
  const ncclResult_t r = ncclCommInitRank(&comm, bootstrap.size(), id, bootstrap.rank());
  if (r != ncclSuccess) {
    abort_job("ncclCommInitRank for group '" + name + "' on cuda:" + std::to_string(device) +
              " failed: " + ncclGetErrorString(r));
  }
  return std::make_unique<NcclCommunicator>(comm, device, name);
}

}  // namespace plm::distributed
