#include "tests/distributed/collective_checks.h"

#include <chrono>
#include <numeric>
#include <sstream>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "distributed/process_groups.h"
#include "distributed/status_agreement.h"

namespace plm::distributed::testing {

namespace {

// "" if equal, else where they first differ.
template <typename T>
std::string compare(const std::string& what, const std::vector<T>& got, const std::vector<T>& want, int rank) {
  if (got.size() != want.size()) return what + ": size mismatch";
  for (size_t i = 0; i < got.size(); ++i) {
    if (got[i] != want[i]) {
      std::ostringstream os;
      os << what << " on rank " << rank << ": element " << i << " is " << got[i] << ", expected " << want[i];
      return os.str();
    }
  }
  return "";
}

Tensor view_of(std::vector<float>& v) { return Tensor(v.data(), {static_cast<int64_t>(v.size())}, DType::kF32); }
Tensor view_of(std::vector<int32_t>& v) { return Tensor(v.data(), {static_cast<int64_t>(v.size())}, DType::kI32); }

}  // namespace

std::string check_all_reduce(Communicator& comm) {
  const int n = comm.size(), me = comm.rank();
  const int len = 7;
  for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kAvg, ReduceOp::kMax}) {
    std::vector<float> x(len), want(len);
    for (int i = 0; i < len; ++i) {
      x[i] = static_cast<float>(me + 1) * 0.5f + static_cast<float>(i);
      float sum = 0, max = -1e30f;
      for (int r = 0; r < n; ++r) {
        const float v = static_cast<float>(r + 1) * 0.5f + static_cast<float>(i);
        sum += v;
        max = std::max(max, v);
      }
      want[i] = op == ReduceOp::kSum ? sum : op == ReduceOp::kAvg ? sum / static_cast<float>(n) : max;
    }
    comm.all_reduce(view_of(x), op);
    if (auto e = compare("all_reduce f32 " + reduce_op_name(op), x, want, me); !e.empty()) return e;
  }
  // bf16: small integers are exact in bf16, so the sum is exact.
  std::vector<bf16> h(5);
  for (int i = 0; i < 5; ++i) h[i] = bf16(static_cast<float>(me + i));
  comm.all_reduce(Tensor(h.data(), {5}, DType::kBF16), ReduceOp::kSum);
  for (int i = 0; i < 5; ++i) {
    const float want = static_cast<float>(n * i + n * (n - 1) / 2);
    if (static_cast<float>(h[i]) != want) return "all_reduce bf16 sum mismatch at " + std::to_string(i);
  }
  std::vector<int32_t> ints = {me, -me, 3};
  comm.all_reduce(view_of(ints), ReduceOp::kMax);
  return compare("all_reduce i32 max", ints, std::vector<int32_t>{n - 1, 0, 3}, me);
}

std::string check_all_gather(Communicator& comm) {
  const int n = comm.size(), me = comm.rank();
  // Equal counts.
  std::vector<float> in = {static_cast<float>(me), static_cast<float>(10 * me)}, out(2 * n), want;
  for (int r = 0; r < n; ++r) want.insert(want.end(), {static_cast<float>(r), static_cast<float>(10 * r)});
  comm.all_gather(view_of(out), view_of(in));
  if (auto e = compare("all_gather equal", out, want, me); !e.empty()) return e;
  // Uneven: rank r contributes r + 1 values 100 r + j.
  std::vector<int64_t> counts(n);
  std::iota(counts.begin(), counts.end(), 1);
  std::vector<int32_t> mine(me + 1), gathered(n * (n + 1) / 2), expected;
  for (int j = 0; j <= me; ++j) mine[j] = 100 * me + j;
  for (int r = 0; r < n; ++r) {
    for (int j = 0; j <= r; ++j) expected.push_back(100 * r + j);
  }
  comm.all_gather(view_of(gathered), view_of(mine), counts);
  return compare("all_gather uneven", gathered, expected, me);
}

std::string check_reduce_scatter(Communicator& comm) {
  const int n = comm.size(), me = comm.rank();
  // Uneven: slice r has r + 1 elements; element k of the whole vector on rank q is q + k.
  std::vector<int64_t> counts(n);
  std::iota(counts.begin(), counts.end(), 1);
  const int64_t total = n * (n + 1) / 2;
  std::vector<float> in(total);
  for (int64_t k = 0; k < total; ++k) in[k] = static_cast<float>(me + k);
  std::vector<float> out(me + 1), want(me + 1);
  const int64_t offset = me * (me + 1) / 2;
  for (int j = 0; j <= me; ++j) want[j] = static_cast<float>(n * (offset + j) + n * (n - 1) / 2);
  comm.reduce_scatter(view_of(out), view_of(in), counts, ReduceOp::kSum);
  if (auto e = compare("reduce_scatter uneven", out, want, me); !e.empty()) return e;
  // Equal counts, max.
  std::vector<float> in2(3 * n), out2(3), want2(3);
  for (int k = 0; k < 3 * n; ++k) in2[k] = static_cast<float>(k == 3 * me ? 1000 + me : me);
  for (int j = 0; j < 3; ++j) want2[j] = j == 0 ? static_cast<float>(1000 + me) : static_cast<float>(n - 1);
  comm.reduce_scatter(view_of(out2), view_of(in2), ReduceOp::kMax);
  return compare("reduce_scatter max", out2, want2, me);
}

std::string check_broadcast(Communicator& comm) {
  const int root = comm.size() - 1;
  std::vector<float> x(4, static_cast<float>(comm.rank()));
  comm.broadcast(view_of(x), root);
  return compare("broadcast", x, std::vector<float>(4, static_cast<float>(root)), comm.rank());
}

std::string check_send_recv(Communicator& comm) {
  const int n = comm.size(), me = comm.rank();
  if (n == 1) return "";
  const int next = (me + 1) % n, prev = (me + n - 1) % n;
  std::vector<int32_t> a = {me, 1}, b = {me, 2}, got_a(2), got_b(2);
  // Even ranks send first, odd ranks receive first: no deadlock with blocking transports.
  const auto sends = [&] {
    comm.send(view_of(a), next, /*tag=*/1);
    comm.send(view_of(b), next, /*tag=*/2);
  };
  const auto recvs = [&] {
    comm.recv(view_of(got_a), prev, 1);
    comm.recv(view_of(got_b), prev, 2);
  };
  if (me % 2 == 0) {
    sends();
    recvs();
  } else {
    recvs();
    sends();
  }
  if (auto e = compare("recv tag 1", got_a, std::vector<int32_t>{prev, 1}, me); !e.empty()) return e;
  return compare("recv tag 2", got_b, std::vector<int32_t>{prev, 2}, me);
}

std::string check_polled_transfers(Communicator& comm) {
  const int n = comm.size(), me = comm.rank();
  if (n == 1) return "";
  const int next = (me + 1) % n, prev = (me + n - 1) % n;
  // Past MPI's eager limit, so the send completes only once the receiver takes it.
  constexpr int64_t kCount = 1 << 18;
  std::vector<int32_t> out(kCount, me), in(kCount, -1), never(1, -1);
  // Every rank starts both sides at once (blocking ones would wait on each other around the ring).
  P2pRequest recv = comm.irecv(view_of(in), prev, /*tag=*/5);
  P2pRequest send = comm.isend(view_of(out), next, 5);
  // A receive nobody matches stays unfinished and is abandoned below.
  P2pRequest unmatched = comm.irecv(view_of(never), prev, /*tag=*/6);
  for (int i = 0; i < 100000 && !(recv.done() && send.done()); ++i) {
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  if (!recv.done() || !send.done()) return absl::StrCat("rank ", me, ": the polled transfers did not finish");
  if (unmatched.done()) return absl::StrCat("rank ", me, ": a receive nobody sent to finished");
  unmatched.abandon();
  if (unmatched.in_flight()) return absl::StrCat("rank ", me, ": an abandoned receive is still in flight");
  comm.barrier();
  return compare("polled irecv", in, std::vector<int32_t>(kCount, prev), me);
}

std::string check_isend_irecv(Communicator& comm) {
  const int me = comm.rank(), partner = me ^ 1;
  if (partner >= comm.size()) return "";  // the last rank of an odd group has no partner
  // Both partners post their sends before their receives: blocking sends on both sides would wait forever for
  // messages past the transport's eager limit (the large one is 4 MiB). Two receives with one tag match in
  // posting order, whichever is waited for first.
  constexpr int64_t kLarge = int64_t{1} << 20;
  std::vector<int32_t> small = {me, 7}, large(kLarge, me), got_small(2), got_first(kLarge), got_second(2);
  P2pRequest sent_large = comm.isend(view_of(large), partner, /*tag=*/20);
  P2pRequest sent_small = comm.isend(view_of(small), partner, /*tag=*/21);
  P2pRequest first = comm.irecv(view_of(got_first), partner, 20);
  P2pRequest second = comm.irecv(view_of(got_second), partner, 21);
  second.wait();
  first.wait();
  sent_large.wait();
  sent_small.wait();
  if (auto e = compare("irecv small", got_second, std::vector<int32_t>{partner, 7}, me); !e.empty()) return e;
  if (auto e = compare("irecv large", got_first, std::vector<int32_t>(kLarge, partner), me); !e.empty()) return e;
  // Same tag twice: matched in posting order although the second is waited for first; a moved-from request is
  // empty and destroying a live one waits for it.
  std::vector<int32_t> one = {me, 1}, two = {me, 2}, got_one(2), got_two(2);
  {
    P2pRequest a = comm.isend(view_of(one), partner, 30);
    P2pRequest b = comm.isend(view_of(two), partner, 30);
    P2pRequest r1 = comm.irecv(view_of(got_one), partner, 30);
    P2pRequest r2 = comm.irecv(view_of(got_two), partner, 30);
    P2pRequest moved = std::move(r2);
    if (r2.in_flight()) return "a moved-from request is still in flight";
    moved.wait();
  }
  if (auto e = compare("irecv 1st of a tag", got_one, std::vector<int32_t>{partner, 1}, me); !e.empty()) return e;
  return compare("irecv 2nd of a tag", got_two, std::vector<int32_t>{partner, 2}, me);
}

std::string check_process_groups(Communicator& world, int tp, int pp) {
  const int world_rank = world.rank(), world_size = world.size();
  // The world communicator moves into the groups; split a private copy of it first.
  absl::StatusOr<ProcessGroups> groups = ProcessGroups::create(world.split(0, world_rank, "world"), tp, pp);
  if (!groups.ok()) return std::string(groups.status().message());
  const ParallelDims& d = groups->dims;
  if (d.dp != world_size / (tp * pp)) return "dp size";
  const auto members = [&](Communicator& group) {
    std::vector<int32_t> mine = {world_rank}, all(group.size());
    group.all_gather(view_of(all), view_of(mine));
    return all;
  };
  const ParallelDims::Coordinates c = d.coordinates(world_rank);
  std::vector<int32_t> want_tp, want_pp, want_dp;
  for (int i = 0; i < d.tp; ++i) want_tp.push_back(d.rank_of({i, c.pp_index, c.dp_index}));
  for (int i = 0; i < d.pp; ++i) want_pp.push_back(d.rank_of({c.tp_index, i, c.dp_index}));
  for (int i = 0; i < d.dp; ++i) want_dp.push_back(d.rank_of({c.tp_index, c.pp_index, i}));
  if (auto e = compare("tp group", members(*groups->tp), want_tp, world_rank); !e.empty()) return e;
  if (auto e = compare("pp group", members(*groups->pp), want_pp, world_rank); !e.empty()) return e;
  return compare("dp group", members(*groups->dp), want_dp, world_rank);
}

std::string check_status_agreement(Communicator& comm) {
  const int n = comm.size(), me = comm.rank();
  const auto expect = [&](const std::string& what, const absl::Status& local, const absl::Status& want) -> std::string {
    const absl::Status got = agree_on_status(comm, local, "stage", Device::cpu());
    if (got == want) return "";
    return absl::StrCat(what, " on rank ", me, ": got \"", got.ToString(), "\", expected \"", want.ToString(), "\"");
  };
  if (auto e = expect("every rank OK", absl::OkStatus(), absl::OkStatus()); !e.empty()) return e;
  // The last rank fails: every rank returns its code and message, naming it.
  const absl::Status last = me == n - 1 ? absl::NotFoundError(absl::StrCat("rank ", me, " cannot open x")) : absl::OkStatus();
  if (auto e = expect("the last rank fails", last,
                      absl::NotFoundError(absl::StrCat("stage ", n - 1, " of ", n, ": rank ", n - 1, " cannot open x")));
      !e.empty()) {
    return e;
  }
  // Several ranks fail: the lowest one's error wins.
  const int lowest_odd = n > 1 ? 1 : 0;
  const absl::Status odd = me % 2 == 1 || n == 1 ? absl::DataLossError(absl::StrCat("rank ", me, " read junk")) : absl::OkStatus();
  if (auto e = expect("several ranks fail", odd,
                      absl::DataLossError(absl::StrCat("stage ", lowest_odd, " of ", n, ": rank ", lowest_odd, " read junk")));
      !e.empty()) {
    return e;
  }
  // An empty message (no second broadcast) still carries the code.
  const absl::Status empty = me == 0 ? absl::InternalError("") : absl::OkStatus();
  return expect("an empty message", empty, absl::InternalError(absl::StrCat("stage 0 of ", n, ": ")));
}

}  // namespace plm::distributed::testing
