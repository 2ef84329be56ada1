#include "distributed/mpi_communicator.h"

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <numeric>
#include <thread>
#include <vector>

#include "core/check.h"
#include "distributed/host_reduce.h"
#include "distributed/launch_env.h"
#include "distributed/watchdog.h"

namespace plm::distributed {

namespace {

constexpr std::chrono::seconds kDefaultTimeout{300};

int world_rank() {
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  return rank;
}

// MPI user op for 16-bit floats: len elements combined in f32 (MPI_User_function signature).
template <typename Storage, ReduceOp kOp>
void half_op(void* in, void* inout, int* len, MPI_Datatype*) {
  reduce_into(inout, in, *len, DTypeOf<Storage>::value, kOp);
}

struct HalfOps {
  MPI_Op bf16_sum, bf16_max, f16_sum, f16_max;
};

const HalfOps& half_ops() {
  static const HalfOps ops = [] {
    HalfOps h{};
    MPI_Op_create(&half_op<bf16, ReduceOp::kSum>, /*commute=*/1, &h.bf16_sum);
    MPI_Op_create(&half_op<bf16, ReduceOp::kMax>, 1, &h.bf16_max);
    MPI_Op_create(&half_op<f16, ReduceOp::kSum>, 1, &h.f16_sum);
    MPI_Op_create(&half_op<f16, ReduceOp::kMax>, 1, &h.f16_max);
    return h;
  }();
  return ops;
}

MPI_Datatype mpi_type(DType dtype) {
  switch (dtype) {
    case DType::kF32: return MPI_FLOAT;
    case DType::kBF16: return MPI_UINT16_T;
    case DType::kF16: return MPI_UINT16_T;
    case DType::kI32: return MPI_INT32_T;
    case DType::kI64: return MPI_INT64_T;
    case DType::kU8: return MPI_UINT8_T;
  }
  return MPI_DATATYPE_NULL;
}

MPI_Op mpi_op(DType dtype, ReduceOp op) {
  const bool max = op == ReduceOp::kMax;
  switch (dtype) {
    case DType::kBF16: return max ? half_ops().bf16_max : half_ops().bf16_sum;
    case DType::kF16: return max ? half_ops().f16_max : half_ops().f16_sum;
    case DType::kF32:
    case DType::kI32:
    case DType::kI64:
    case DType::kU8: return max ? MPI_MAX : MPI_SUM;
  }
  return MPI_OP_NULL;
}

int to_int_count(int64_t n, const char* op) {
  PLM_CHECK_LE(n, int64_t{std::numeric_limits<int>::max()}) << op << ": MPI counts are int; split the message";
  return static_cast<int>(n);
}

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator(MPI_Comm comm, std::string name)
      : comm_(comm),
        name_(std::move(name)),
        watchdog_(CommWatchdog::timeout_from_env(kDefaultTimeout), abort_job_on_stall) {
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
  }
  ~MpiCommunicator() override {
    if (comm_ != MPI_COMM_WORLD) MPI_Comm_free(&comm_);
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string name() const override { return name_; }

  void all_reduce(Tensor t, ReduceOp op, Stream) override {
    check_host(t, "all_reduce");
    CommWatchdog::Scope scope(watchdog_, describe("all_reduce"));
    check(MPI_Allreduce(MPI_IN_PLACE, t.data(), to_int_count(t.numel(), "all_reduce"), mpi_type(t.dtype()),
                        mpi_op(t.dtype(), op), comm_),
          "all_reduce");
    if (op == ReduceOp::kAvg) divide_in_place(t.data(), t.numel(), t.dtype(), size_);
  }

  void all_gather(Tensor out, Tensor in, const std::vector<int64_t>& counts, Stream) override {
    check_host(out, "all_gather");
    check_host(in, "all_gather");
    auto [int_counts, displs] = layout(counts, out.numel(), in.numel(), "all_gather");
    CommWatchdog::Scope scope(watchdog_, describe("all_gather"));
    check(MPI_Allgatherv(in.data(), int_counts[rank_], mpi_type(in.dtype()), out.data(), int_counts.data(),
                         displs.data(), mpi_type(out.dtype()), comm_),
          "all_gather");
  }

  void reduce_scatter(Tensor out, Tensor in, const std::vector<int64_t>& counts, ReduceOp op, Stream) override {
    check_host(out, "reduce_scatter");
    check_host(in, "reduce_scatter");
    auto [int_counts, displs] = layout(counts, in.numel(), out.numel(), "reduce_scatter");
    CommWatchdog::Scope scope(watchdog_, describe("reduce_scatter"));
    check(MPI_Reduce_scatter(in.data(), out.data(), int_counts.data(), mpi_type(in.dtype()), mpi_op(in.dtype(), op),
                             comm_),
          "reduce_scatter");
    if (op == ReduceOp::kAvg) divide_in_place(out.data(), out.numel(), out.dtype(), size_);
  }

  void broadcast(Tensor t, int root, Stream) override {
    check_host(t, "broadcast");
    CommWatchdog::Scope scope(watchdog_, describe("broadcast"));
    check(MPI_Bcast(t.data(), to_int_count(t.numel(), "broadcast"), mpi_type(t.dtype()), root, comm_), "broadcast");
  }

  void wait_for_broadcast(Tensor t, int root) override {
    check_host(t, "broadcast");
    MPI_Request request;
    check(MPI_Ibcast(t.data(), to_int_count(t.numel(), "broadcast"), mpi_type(t.dtype()), root, comm_, &request),
          "broadcast");
    // Test, then sleep from 20 us up to 2 ms between tests: a woken follower answers within ~2 ms, an idle one
    // costs no core (a blocking MPI_Bcast spins one).
    auto pause = std::chrono::microseconds(20);
    for (int done = 0;;) {
      check(MPI_Test(&request, &done, MPI_STATUS_IGNORE), "broadcast");
      if (done) return;
      std::this_thread::sleep_for(pause);
      pause = std::min(pause * 2, std::chrono::microseconds(2000));
    }
  }

  void send(Tensor t, int peer, int tag, Stream) override {
    check_host(t, "send");
    CommWatchdog::Scope scope(watchdog_, describe("send to rank " + std::to_string(peer)));
    check(MPI_Send(t.data(), to_int_count(t.numel(), "send"), mpi_type(t.dtype()), peer, tag, comm_), "send");
  }

  void recv(Tensor t, int peer, int tag, Stream) override {
    check_host(t, "recv");
    CommWatchdog::Scope scope(watchdog_, describe("recv from rank " + std::to_string(peer)));
    MPI_Status status;
    check(MPI_Recv(t.data(), to_int_count(t.numel(), "recv"), mpi_type(t.dtype()), peer, tag, comm_, &status),
          "recv");
    check_received(status, t, "recv");
  }

  std::optional<int> probe(int tag) override {
    int pending = 0;
    MPI_Status status;
    check(MPI_Iprobe(MPI_ANY_SOURCE, tag, comm_, &pending, &status), "probe");
    if (!pending) return std::nullopt;
    return status.MPI_SOURCE;
  }

  P2pRequest isend(Tensor t, int peer, int tag, Stream) override {
    check_host(t, "isend");
    MPI_Request request;
    check(MPI_Isend(t.data(), to_int_count(t.numel(), "isend"), mpi_type(t.dtype()), peer, tag, comm_, &request),
          "isend");
    return P2pRequest(std::make_unique<PendingTransfer>(*this, request, "send to rank " + std::to_string(peer), t,
                                                        /*check_count=*/false));
  }

  P2pRequest irecv(Tensor t, int peer, int tag, Stream) override {
    check_host(t, "irecv");
    MPI_Request request;
    check(MPI_Irecv(t.data(), to_int_count(t.numel(), "irecv"), mpi_type(t.dtype()), peer, tag, comm_, &request),
          "irecv");
    return P2pRequest(std::make_unique<PendingTransfer>(*this, request, "recv from rank " + std::to_string(peer), t,
                                                        /*check_count=*/true));
  }

  void barrier() override {
    CommWatchdog::Scope scope(watchdog_, describe("barrier"));
    check(MPI_Barrier(comm_), "barrier");
  }

  std::unique_ptr<Communicator> split(int color, int key, const std::string& name) override {
    MPI_Comm sub = MPI_COMM_NULL;
    {
      CommWatchdog::Scope scope(watchdog_, describe("split"));
      check(MPI_Comm_split(comm_, color, key, &sub), "split");
    }
    return std::make_unique<MpiCommunicator>(sub, name);
  }

 private:
  // An MPI_Isend / MPI_Irecv in flight; wait() is MPI_Wait under the watchdog, test() MPI_Test. An abandoned
  // one (its peer is presumed dead) is freed: a receive is cancelled first, so that no later message lands in
  // it; a send cannot be, and may still read its buffer.
  class PendingTransfer final : public P2pRequest::Pending {
   public:
    PendingTransfer(MpiCommunicator& comm, MPI_Request request, std::string what, Tensor t, bool check_count)
        : comm_(comm), request_(request), what_(std::move(what)), t_(t), check_count_(check_count) {}
    void wait() override {
      CommWatchdog::Scope scope(comm_.watchdog_, comm_.describe(what_));
      MPI_Status status;
      comm_.check(MPI_Wait(&request_, &status), what_.c_str());
      if (check_count_) comm_.check_received(status, t_, what_.c_str());
    }
    bool test() override {
      int finished = 0;
      MPI_Status status;
      comm_.check(MPI_Test(&request_, &finished, &status), what_.c_str());
      if (finished && check_count_) comm_.check_received(status, t_, what_.c_str());
      return finished != 0;
    }
    void abandon() override {
      if (check_count_) MPI_Cancel(&request_);
      MPI_Request_free(&request_);
    }

   private:
    MpiCommunicator& comm_;
    MPI_Request request_;
    const std::string what_;
    const Tensor t_;
    const bool check_count_;
  };

  // A receive must fill `t` exactly.
  void check_received(const MPI_Status& status, const Tensor& t, const char* op) const {
    int received = 0;
    MPI_Get_count(&status, mpi_type(t.dtype()), &received);
    if (received != t.numel()) {
      abort_job(describe(op) + ": expected " + std::to_string(t.numel()) + " elements from rank " +
                std::to_string(status.MPI_SOURCE) + ", got " + std::to_string(received));
    }
  }

  std::string describe(const std::string& op) const {
    return op + " on group '" + name_ + "' (rank " + std::to_string(rank_) + " of " + std::to_string(size_) + ")";
  }

  void check(int code, const char* op) const {
    if (code == MPI_SUCCESS) return;
    char text[MPI_MAX_ERROR_STRING];
    int length = 0;
    MPI_Error_string(code, text, &length);
    abort_job(describe(op) + " failed: " + std::string(text, length));
  }

  void check_host(const Tensor& t, const char* op) const {
    PLM_CHECK(t.device().is_cpu() && t.is_contiguous())
        << op << " on MPI group " << name_ << " needs a contiguous CPU tensor (GPU tensors go through NCCL), got "
        << t.describe();
  }

  // int counts and displacements for the v-collectives, validated against the totals.
  std::pair<std::vector<int>, std::vector<int>> layout(const std::vector<int64_t>& counts, int64_t total,
                                                       int64_t own, const char* op) const {
    PLM_CHECK_EQ(static_cast<int>(counts.size()), size_) << op << " on " << name_ << ": one count per rank";
    PLM_CHECK_EQ(std::accumulate(counts.begin(), counts.end(), int64_t{0}), total)
        << op << " on " << name_ << ": counts do not add up";
    PLM_CHECK_EQ(counts[rank_], own) << op << " on " << name_ << ": this rank's count";
    std::vector<int> int_counts(size_), displs(size_);
    int64_t offset = 0;
    for (int r = 0; r < size_; ++r) {
      int_counts[r] = to_int_count(counts[r], op);
      displs[r] = to_int_count(offset, op);
      offset += counts[r];
    }
    return {int_counts, displs};
  }

  MPI_Comm comm_;
  const std::string name_;
  int rank_ = 0;
  int size_ = 1;
  CommWatchdog watchdog_;
};

}  // namespace

namespace {

// Under `mpirun --enable-recovery` a rank of the job may have died, and then MPI_Finalize's closing fence
// (Open MPI 4.1.4) sometimes waits for it for good: give it PLM_FINALIZE_TIMEOUT_S (default 20 s), then leave
// without it. mpirun keeps no exit status in that mode anyway (serve/README.md, "Failure").
void bound_finalize() {
  const std::chrono::seconds timeout = [] {
    const char* value = std::getenv("PLM_FINALIZE_TIMEOUT_S");
    const int s = value != nullptr ? std::atoi(value) : 0;
    return std::chrono::seconds(s > 0 ? s : 20);
  }();
  std::thread([timeout] {
    std::this_thread::sleep_for(timeout);
    std::fprintf(stderr, "plm rank %d: MPI_Finalize did not finish in %lld s (a rank of the job died); exiting without it\n",
                 world_rank(), static_cast<long long>(timeout.count()));
    std::fflush(stderr);
    std::fflush(stdout);
    std::_Exit(0);
  }).detach();
}

}  // namespace

void ensure_mpi_initialized() {
  static std::once_flag once;
  std::call_once(once, [] {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (initialized) return;
    int provided = 0;
    MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided);
    std::atexit([] {
      int finalized = 0;
      MPI_Finalized(&finalized);
      if (finalized) return;
      if (read_launch_env().survives_rank_death) bound_finalize();
      MPI_Finalize();
    });
  });
}

std::unique_ptr<Communicator> mpi_world() {
  ensure_mpi_initialized();
  return std::make_unique<MpiCommunicator>(MPI_COMM_WORLD, "world");
}

namespace {

// Prints "plm rank R: message; aborting the job", waits `pause`, and aborts the job.
[[noreturn]] void report_and_abort(const std::string& message, std::chrono::seconds pause) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  std::fprintf(stderr, "plm rank %d: %s; aborting the job\n", initialized ? world_rank() : 0, message.c_str());
  std::fflush(stderr);
  std::this_thread::sleep_for(pause);
  if (initialized) MPI_Abort(MPI_COMM_WORLD, 1);
  std::abort();
}

}  // namespace

void abort_job(const std::string& message) { report_and_abort(message, std::chrono::seconds(2)); }

void abort_job_on_stall(const std::string& message) {
  // Longer than the watchdogs' 1 s polling period, so ranks stalled at about the same moment all report.
  report_and_abort(message, std::chrono::seconds(2));
}

}  // namespace plm::distributed
