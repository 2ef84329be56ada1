#include "serve/disagg/wire.h"

#include <algorithm>
#include <chrono>
#include <thread>

#include "core/check.h"
#include "core/cuda/runtime.h"

namespace plm::serve::disagg {

namespace {

constexpr int kJobKeysTag = 32, kJobPixelsTag = 33, kReplyFlagsTag = 42, kPayloadTag = 43;

// Job header: {kind (0 job, 1 stop, 2 join), id, n_image, n_video, image (c, h, w), video (c, h, w)}.
using JobHeader = std::array<int64_t, 10>;
// Reply header: {id, n[2], encoded[2], encode_ns[2], queued, busy_ns, uptime_ns}.
using ReplyHeader = std::array<int64_t, 10>;

template <size_t N>
Tensor header_view(std::array<int64_t, N>& h) {
  return Tensor(h.data(), {static_cast<int64_t>(N)}, DType::kI64);
}

int64_t to_ns(double s) { return static_cast<int64_t>(s * 1e9); }
double to_s(int64_t ns) { return static_cast<double>(ns) * 1e-9; }

const MediaTiles& tiles_of(const PreparedPrompt& p, int kind) { return kind == 0 ? p.images : p.videos; }

}  // namespace

std::optional<int> wait_for_message(distributed::Communicator& comm, int tag, const std::function<bool()>& give_up) {
  auto pause = std::chrono::microseconds(20);
  while (true) {
    if (const std::optional<int> peer = comm.probe(tag)) return peer;
    if (give_up()) return std::nullopt;
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::microseconds(2000));
  }
}

void send_job(distributed::Communicator& jobs, int encoder, int64_t id, const PreparedPrompt& prompt) {
  JobHeader h{0, id, prompt.images.count(), prompt.videos.count()};
  std::vector<uint8_t> keys;
  for (int kind = 0; kind < 2; ++kind) {
    const MediaTiles& t = tiles_of(prompt, kind);
    if (t.count() == 0) continue;
    PLM_CHECK(t.pixels.view().defined() && t.pixels.size(0) == t.count()) << "job " << id << ": pixels per key";
    for (int d = 0; d < 3; ++d) h[4 + kind * 3 + d] = t.pixels.size(1 + d);
    for (const MediaKey& k : t.keys) keys.insert(keys.end(), k.digest.begin(), k.digest.end());
  }
  jobs.send(header_view(h), encoder, kJobTag);
  jobs.send(Tensor(keys.data(), {static_cast<int64_t>(keys.size())}, DType::kU8), encoder, kJobKeysTag);
  for (int kind = 0; kind < 2; ++kind) {
    const MediaTiles& t = tiles_of(prompt, kind);
    if (t.count() > 0) jobs.send(t.pixels.view(), encoder, kJobPixelsTag);
  }
}

void send_stop(distributed::Communicator& jobs, int encoder) {
  JobHeader h{1};
  jobs.send(header_view(h), encoder, kJobTag);
}

void send_join(distributed::Communicator& jobs, int encoder) {
  JobHeader h{2};
  jobs.send(header_view(h), encoder, kJobTag);
}

ReceivedJob recv_job(distributed::Communicator& jobs, int front) {
  ReceivedJob job;
  job.front = front;
  JobHeader h{};
  jobs.recv(header_view(h), front, kJobTag);
  job.stop = h[0] == 1;
  job.join = h[0] == 2;
  job.id = h[1];
  if (job.stop || job.join) return job;
  const int64_t n[2] = {h[2], h[3]};
  std::vector<uint8_t> keys(static_cast<size_t>((n[0] + n[1]) * 32));
  jobs.recv(Tensor(keys.data(), {static_cast<int64_t>(keys.size())}, DType::kU8), front, kJobKeysTag);
  size_t at = 0;
  for (int kind = 0; kind < 2; ++kind) {
    for (int64_t i = 0; i < n[kind]; ++i, at += 32) {
      MediaKey& k = job.keys[kind].emplace_back();
      std::copy(keys.begin() + at, keys.begin() + at + 32, k.digest.begin());
    }
    if (n[kind] == 0) continue;
    job.pixels[kind] = OwnedTensor({n[kind], h[4 + kind * 3], h[5 + kind * 3], h[6 + kind * 3]}, DType::kF32);
    jobs.recv(job.pixels[kind], front, kJobPixelsTag);
  }
  return job;
}

void send_reply(distributed::Communicator& replies, distributed::Communicator& data, int front, const ReplyInfo& info,
                const std::vector<bool>& encoded_flags, const std::array<Tensor, 2>& rows) {
  ReplyHeader h{info.id,          info.num_items[0],      info.num_items[1],  info.encoded[0],
                info.encoded[1],  to_ns(info.encode_s[0]), to_ns(info.encode_s[1]), info.queued_items,
                to_ns(info.busy_s), to_ns(info.uptime_s)};
  replies.send(header_view(h), front, kReplyTag);
  std::vector<uint8_t> flags(encoded_flags.begin(), encoded_flags.end());
  replies.send(Tensor(flags.data(), {static_cast<int64_t>(flags.size())}, DType::kU8), front, kReplyFlagsTag);
  for (int kind = 0; kind < 2; ++kind) {
    if (info.num_items[kind] > 0) data.send(rows[kind], front, kPayloadTag);
  }
  if (!rows[0].device().is_cpu() || !rows[1].device().is_cpu()) cuda_stream_synchronize(Stream{});
}

ReceivedReply recv_reply(distributed::Communicator& replies, distributed::Communicator& data, int encoder,
                         int64_t rows_per_item, int64_t hidden, DType dtype, Device device) {
  ReceivedReply r;
  ReplyHeader h{};
  replies.recv(header_view(h), encoder, kReplyTag);
  r.info = {.id = h[0],
            .num_items = {h[1], h[2]},
            .encoded = {h[3], h[4]},
            .encode_s = {to_s(h[5]), to_s(h[6])},
            .queued_items = h[7],
            .busy_s = to_s(h[8]),
            .uptime_s = to_s(h[9])};
  std::vector<uint8_t> flags(static_cast<size_t>(h[1] + h[2]));
  replies.recv(Tensor(flags.data(), {static_cast<int64_t>(flags.size())}, DType::kU8), encoder, kReplyFlagsTag);
  r.encoded_flags.assign(flags.begin(), flags.end());
  const auto start = std::chrono::steady_clock::now();
  for (int kind = 0; kind < 2; ++kind) {
    if (r.info.num_items[kind] == 0) continue;
    r.rows[kind] = OwnedTensor({r.info.num_items[kind] * rows_per_item, hidden}, dtype, device);
    data.recv(r.rows[kind], encoder, kPayloadTag);
    r.payload_bytes += static_cast<int64_t>(r.rows[kind].view().nbytes());
  }
  if (!device.is_cpu()) cuda_stream_synchronize(Stream{});
  r.transfer_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

}  // namespace plm::serve::disagg
