#include "distributed/local_communicator.h"

#include <algorithm>
#include <barrier>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <numeric>
#include <thread>
#include <tuple>

#include "core/check.h"
#include "distributed/host_reduce.h"
#include "distributed/watchdog.h"

namespace plm::distributed {

namespace {

constexpr std::chrono::seconds kDefaultTimeout{300};

// A stalled in-process collective (a rank returned early, e.g. from a failed ASSERT) ends the process with
// the stalled operation named, as MPI_Abort ends an MPI job.
[[noreturn]] void abort_process(const std::string& message) {
  std::fprintf(stderr, "plm (in-process ranks): %s; aborting the process\n", message.c_str());
  std::fflush(stderr);
  std::abort();
}

// State shared by the communicators of one group.
struct LocalGroup {
  explicit LocalGroup(int n) : size(n), barrier(n), posted(n), colors(n), keys(n), children(n) {}

  const int size;
  std::barrier<> barrier;
  std::vector<const void*> posted;  // each rank's input for the collective in flight
  std::vector<int> colors, keys;    // split()
  std::vector<std::shared_ptr<LocalGroup>> children;

  // The messages of one (src, dst, tag) route, numbered in send order. A receive claims the next number when it
  // is posted (irecv), so receives match in posting order whenever they are waited for, as MPI's do.
  struct Route {
    int64_t sent = 0, claimed = 0;
    std::map<int64_t, std::vector<char>> messages;  // sent, not yet taken by a wait
  };
  std::mutex mailbox_mutex;
  std::condition_variable mailbox_cv;
  std::map<std::tuple<int, int, int>, Route> mailbox;  // (src, dst, tag)
};

class LocalCommunicator final : public Communicator {
 public:
  LocalCommunicator(std::shared_ptr<LocalGroup> group, int rank, std::string name)
      : group_(std::move(group)),
        rank_(rank),
        name_(std::move(name)),
        watchdog_(CommWatchdog::timeout_from_env(kDefaultTimeout), abort_process) {}

  int rank() const override { return rank_; }
  int size() const override { return group_->size; }
  std::string name() const override { return name_; }

  void all_reduce(Tensor t, ReduceOp op, Stream) override {
    check_host(t, "all_reduce");
    CommWatchdog::Scope scope(watchdog_, describe("all_reduce"));
    std::vector<char> result(t.nbytes());
    post(t.data());
    std::memcpy(result.data(), group_->posted[0], t.nbytes());
    for (int r = 1; r < size(); ++r) reduce_into(result.data(), group_->posted[r], t.numel(), t.dtype(), op);
    if (op == ReduceOp::kAvg) divide_in_place(result.data(), t.numel(), t.dtype(), size());
    group_->barrier.arrive_and_wait();  // everyone has read every input
    std::memcpy(t.data(), result.data(), t.nbytes());
  }

  void all_gather(Tensor out, Tensor in, const std::vector<int64_t>& counts, Stream) override {
    check_host(out, "all_gather");
    check_host(in, "all_gather");
    const std::vector<int64_t> offsets = check_counts(counts, out.numel(), in.numel(), "all_gather");
    const size_t elem = dtype_size(in.dtype());
    CommWatchdog::Scope scope(watchdog_, describe("all_gather"));
    post(in.data());
    for (int r = 0; r < size(); ++r) {
      char* dst = static_cast<char*>(out.data()) + offsets[r] * elem;
      if (dst != group_->posted[r]) std::memcpy(dst, group_->posted[r], counts[r] * elem);  // in-place gather
    }
    group_->barrier.arrive_and_wait();
  }

  void reduce_scatter(Tensor out, Tensor in, const std::vector<int64_t>& counts, ReduceOp op, Stream) override {
    check_host(out, "reduce_scatter");
    check_host(in, "reduce_scatter");
    const std::vector<int64_t> offsets = check_counts(counts, in.numel(), out.numel(), "reduce_scatter");
    const size_t elem = dtype_size(in.dtype());
    const int64_t n = counts[rank_];
    std::vector<char> result(n * elem);
    CommWatchdog::Scope scope(watchdog_, describe("reduce_scatter"));
    post(in.data());
    const auto slice = [&](int r) { return static_cast<const char*>(group_->posted[r]) + offsets[rank_] * elem; };
    std::memcpy(result.data(), slice(0), n * elem);
    for (int r = 1; r < size(); ++r) reduce_into(result.data(), slice(r), n, in.dtype(), op);
    if (op == ReduceOp::kAvg) divide_in_place(result.data(), n, in.dtype(), size());
    group_->barrier.arrive_and_wait();
    std::memcpy(out.data(), result.data(), n * elem);
  }

  void broadcast(Tensor t, int root, Stream) override {
    check_host(t, "broadcast");
    PLM_CHECK(root >= 0 && root < size()) << "broadcast root " << root << " outside group " << name_;
    CommWatchdog::Scope scope(watchdog_, describe("broadcast"));
    post(t.data());
    if (rank_ != root) std::memcpy(t.data(), group_->posted[root], t.nbytes());
    group_->barrier.arrive_and_wait();
  }

  // Sends are buffered: the message is copied out before send returns, so an isend is complete at once.
  void send(Tensor t, int peer, int tag, Stream) override {
    check_host(t, "send");
    std::vector<char> bytes(static_cast<const char*>(t.data()), static_cast<const char*>(t.data()) + t.nbytes());
    {
      std::lock_guard<std::mutex> lock(group_->mailbox_mutex);
      LocalGroup::Route& route = group_->mailbox[{rank_, peer, tag}];
      route.messages.emplace(route.sent++, std::move(bytes));
    }
    group_->mailbox_cv.notify_all();
  }

  void recv(Tensor t, int peer, int tag, Stream s) override { irecv(t, peer, tag, s).wait(); }

  P2pRequest isend(Tensor t, int peer, int tag, Stream s) override {
    send(t, peer, tag, s);
    return P2pRequest();
  }

  P2pRequest irecv(Tensor t, int peer, int tag, Stream) override {
    check_host(t, "recv");
    int64_t ticket = 0;
    {
      std::lock_guard<std::mutex> lock(group_->mailbox_mutex);
      ticket = group_->mailbox[{peer, rank_, tag}].claimed++;
    }
    return P2pRequest(std::make_unique<PendingRecv>(*this, t, peer, tag, ticket));
  }

  std::optional<int> probe(int tag) override {
    std::lock_guard<std::mutex> lock(group_->mailbox_mutex);
    for (const auto& [key, route] : group_->mailbox) {
      const auto [src, dst, message_tag] = key;
      if (dst == rank_ && message_tag == tag && route.messages.lower_bound(route.claimed) != route.messages.end()) {
        return src;
      }
    }
    return std::nullopt;
  }

  void barrier() override {
    CommWatchdog::Scope scope(watchdog_, describe("barrier"));
    group_->barrier.arrive_and_wait();
  }

  std::unique_ptr<Communicator> split(int color, int key, const std::string& name) override {
    CommWatchdog::Scope scope(watchdog_, describe("split"));
    group_->colors[rank_] = color;
    group_->keys[rank_] = key;
    group_->barrier.arrive_and_wait();
    std::vector<int> members;
    for (int r = 0; r < size(); ++r) {
      if (group_->colors[r] == color) members.push_back(r);
    }
    std::stable_sort(members.begin(), members.end(),
                     [&](int a, int b) { return group_->keys[a] < group_->keys[b]; });
    const int leader = *std::min_element(members.begin(), members.end());
    if (rank_ == leader) group_->children[leader] = std::make_shared<LocalGroup>(static_cast<int>(members.size()));
    group_->barrier.arrive_and_wait();
    std::shared_ptr<LocalGroup> child = group_->children[leader];
    const int new_rank = static_cast<int>(std::find(members.begin(), members.end(), rank_) - members.begin());
    group_->barrier.arrive_and_wait();  // every rank holds its child before the slots are reused
    if (rank_ == leader) group_->children[leader].reset();
    return std::make_unique<LocalCommunicator>(std::move(child), new_rank, name);
  }

 private:
  // A posted receive: message number `ticket` of its route, copied into `t` by wait().
  class PendingRecv final : public P2pRequest::Pending {
   public:
    PendingRecv(LocalCommunicator& comm, Tensor t, int peer, int tag, int64_t ticket)
        : comm_(comm), t_(t), peer_(peer), tag_(tag), ticket_(ticket) {}
    void wait() override {
      LocalGroup& group = *comm_.group_;
      CommWatchdog::Scope scope(comm_.watchdog_, comm_.describe("recv from rank " + std::to_string(peer_)));
      std::unique_lock<std::mutex> lock(group.mailbox_mutex);
      group.mailbox_cv.wait(lock, [&] { return messages().count(ticket_) > 0; });
      take();
    }
    // Done once the message is in the mailbox (then copied out), so a test can play a peer that never sends.
    bool test() override {
      const std::lock_guard<std::mutex> lock(comm_.group_->mailbox_mutex);
      if (messages().count(ticket_) == 0) return false;
      take();
      return true;
    }

   private:
    // This receive's route; mailbox_mutex held.
    std::map<int64_t, std::vector<char>>& messages() const {
      return comm_.group_->mailbox[{peer_, comm_.rank_, tag_}].messages;
    }
    // Copies message `ticket_` (there) into `t_` and drops it; mailbox_mutex held.
    void take() const {
      const auto message = messages().find(ticket_);
      PLM_CHECK_EQ(message->second.size(), t_.nbytes()) << "recv on " << comm_.name_ << " from rank " << peer_
                                                          << " tag " << tag_ << ": message size differs";
      std::memcpy(t_.data(), message->second.data(), t_.nbytes());
      messages().erase(message);
    }

    LocalCommunicator& comm_;
    const Tensor t_;
    const int peer_, tag_;
    const int64_t ticket_;
  };

  std::string describe(const std::string& op) const {
    return op + " on group '" + name_ + "' (rank " + std::to_string(rank_) + " of " + std::to_string(size()) + ")";
  }

  // Publishes this rank's input and waits until every rank has published.
  void post(const void* data) {
    group_->posted[rank_] = data;
    group_->barrier.arrive_and_wait();
  }

  void check_host(const Tensor& t, const char* op) const {
    PLM_CHECK(t.device().is_cpu() && t.is_contiguous())
        << op << " on local group " << name_ << " needs a contiguous CPU tensor, got " << t.describe();
  }

  // Validates counts against the gathered/scattered total; returns each rank's offset.
  std::vector<int64_t> check_counts(const std::vector<int64_t>& counts, int64_t total, int64_t own,
                                    const char* op) const {
    PLM_CHECK_EQ(static_cast<int>(counts.size()), size()) << op << " on " << name_ << ": one count per rank";
    std::vector<int64_t> offsets(counts.size(), 0);
    std::exclusive_scan(counts.begin(), counts.end(), offsets.begin(), int64_t{0});
    PLM_CHECK_EQ(offsets.back() + counts.back(), total) << op << " on " << name_ << ": counts do not add up";
    PLM_CHECK_EQ(counts[rank_], own) << op << " on " << name_ << ": this rank's count";
    return offsets;
  }

  std::shared_ptr<LocalGroup> group_;
  const int rank_;
  const std::string name_;
  CommWatchdog watchdog_;
};

}  // namespace

std::vector<std::unique_ptr<Communicator>> make_local_communicators(int n) {
  PLM_CHECK_GT(n, 0);
  auto group = std::make_shared<LocalGroup>(n);
  std::vector<std::unique_ptr<Communicator>> comms;
  for (int r = 0; r < n; ++r) comms.push_back(std::make_unique<LocalCommunicator>(group, r, "world"));
  return comms;
}

void run_local_ranks(int n, const std::function<void(Communicator&)>& fn) {
  std::vector<std::unique_ptr<Communicator>> comms = make_local_communicators(n);
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r) threads.emplace_back([&, r] { fn(*comms[r]); });
  for (std::thread& t : threads) t.join();
}

}  // namespace plm::distributed
