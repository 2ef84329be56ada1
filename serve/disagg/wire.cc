#include "serve/disagg/wire.h"

#include <algorithm>
#include <chrono>
#include <thread>
#include <utility>

#include "core/check.h"
#include "core/cuda/runtime.h"

namespace plm::serve::disagg {

namespace {

constexpr int kJobKeysTag = 32, kJobPixelsTag = 33, kReplyFlagsTag = 42, kPayloadTag = 43;

constexpr int64_t kHeaderSize = 10;
// Job header: {kind (0 job, 1 stop, 2 join), id, n_image, n_video, image (c, h, w), video (c, h, w)}.
using JobHeader = std::array<int64_t, kHeaderSize>;
// Reply header: {id, n[2], encoded[2], encode_ns[2], queued, busy_ns, uptime_ns}.
using ReplyHeader = std::array<int64_t, kHeaderSize>;

template <size_t N>
Tensor header_view(std::array<int64_t, N>& h) {
  return Tensor(h.data(), {static_cast<int64_t>(N)}, DType::kI64);
}

int64_t to_ns(double s) { return static_cast<int64_t>(s * 1e9); }
double to_s(int64_t ns) { return static_cast<double>(ns) * 1e-9; }

// Polls with sleeps from 20 us to 2 ms until `ready()`; false once `give_up()` is true first.
bool poll_until(const std::function<bool()>& ready, const std::function<bool()>& give_up) {
  auto pause = std::chrono::microseconds(20);
  while (true) {
    if (ready()) return true;
    if (give_up()) return false;
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::microseconds(2000));
  }
}

// A host buffer of `n` elements owned by the message.
template <typename T>
T* own_buffer(WireMessage& m, size_t n) {
  auto buffer = std::make_shared<std::vector<T>>(n);
  T* data = buffer->data();
  m.buffers.push_back(std::move(buffer));
  return data;
}

// Polls `m`'s transfers: true once all are done, false when the peer died first (then `m` belongs in a
// LostMessages).
bool finish(WireMessage& m, const PeerAlive& alive) {
  return poll_until([&] { return finished(m); }, [&] { return !alive(); });
}

// A job header alone, of `kind` 1 (stop) or 2 (join).
void send_header_only(distributed::Communicator& jobs, int encoder, int64_t kind, const PeerAlive& alive,
                      LostMessages& lost) {
  WireMessage m;
  int64_t* h = own_buffer<int64_t>(m, kHeaderSize);
  h[0] = kind;
  m.transfers.push_back(start_send(jobs, Tensor(h, {kHeaderSize}, DType::kI64), encoder, kJobTag));
  if (!finish(m, alive)) lost.keep(std::move(m));
}

}  // namespace

void LostMessages::keep(WireMessage message) {
  const std::lock_guard lock(mutex_);
  messages_.push_back(std::move(message));
}

std::optional<int> wait_for_message(distributed::Communicator& comm, int tag, const std::function<bool()>& give_up) {
  std::optional<int> peer;
  if (!poll_until([&] { return (peer = comm.probe(tag)).has_value(); }, give_up)) return std::nullopt;
  return peer;
}

JobMedia take_job_media(PreparedPrompt& prompt) {
  JobMedia media;
  for (int kind = 0; kind < 2; ++kind) {
    MediaTiles& t = kind == 0 ? prompt.images : prompt.videos;
    media.keys[kind] = t.keys;
    media.pixels[kind] = std::exchange(t.pixels, OwnedTensor());  // a moved-from OwnedTensor keeps its view
  }
  return media;
}

bool finished(WireMessage& m) {
  return std::all_of(m.transfers.begin(), m.transfers.end(), [](PolledTransfer& t) { return t.done(); });
}

WireMessage start_job(distributed::Communicator& jobs, int encoder, int64_t id, JobMedia media) {
  WireMessage m;
  int64_t* h = own_buffer<int64_t>(m, kHeaderSize);
  h[1] = id;
  std::vector<uint8_t> keys;
  for (int kind = 0; kind < 2; ++kind) {
    const int64_t n = static_cast<int64_t>(media.keys[kind].size());
    h[2 + kind] = n;
    if (n == 0) continue;
    const OwnedTensor& pixels = media.pixels[kind];
    PLM_CHECK(pixels.view().defined() && pixels.size(0) == n) << "job " << id << ": pixels per key";
    for (int d = 0; d < 3; ++d) h[4 + kind * 3 + d] = pixels.size(1 + d);
    for (const MediaKey& k : media.keys[kind]) keys.insert(keys.end(), k.digest.begin(), k.digest.end());
  }
  uint8_t* key_bytes = own_buffer<uint8_t>(m, keys.size());
  std::copy(keys.begin(), keys.end(), key_bytes);
  m.transfers.push_back(start_send(jobs, Tensor(h, {kHeaderSize}, DType::kI64), encoder, kJobTag));
  m.transfers.push_back(
      start_send(jobs, Tensor(key_bytes, {static_cast<int64_t>(keys.size())}, DType::kU8), encoder, kJobKeysTag));
  for (int kind = 0; kind < 2; ++kind) {
    if (media.keys[kind].empty()) continue;
    auto pixels = std::make_shared<OwnedTensor>(std::move(media.pixels[kind]));
    m.transfers.push_back(start_send(jobs, pixels->view(), encoder, kJobPixelsTag));
    m.buffers.push_back(std::move(pixels));
  }
  return m;
}

void send_stop(distributed::Communicator& jobs, int encoder, const PeerAlive& alive, LostMessages& lost) {
  send_header_only(jobs, encoder, 1, alive, lost);
}

void send_join(distributed::Communicator& jobs, int encoder, const PeerAlive& alive, LostMessages& lost) {
  send_header_only(jobs, encoder, 2, alive, lost);
}

std::optional<ReceivedJob> recv_job(distributed::Communicator& jobs, int front, const PeerAlive& alive,
                                    LostMessages& lost) {
  ReceivedJob job;
  job.front = front;
  JobHeader h{};
  jobs.recv(header_view(h), front, kJobTag);  // probed: it is there
  job.stop = h[0] == 1;
  job.join = h[0] == 2;
  job.id = h[1];
  if (job.stop || job.join) return job;
  const int64_t n[2] = {h[2], h[3]};
  WireMessage m;
  const size_t num_key_bytes = static_cast<size_t>((n[0] + n[1]) * 32);
  uint8_t* keys = own_buffer<uint8_t>(m, num_key_bytes);
  m.transfers.push_back(
      start_recv(jobs, Tensor(keys, {static_cast<int64_t>(num_key_bytes)}, DType::kU8), front, kJobKeysTag));
  std::array<std::shared_ptr<OwnedTensor>, 2> pixels;
  for (int kind = 0; kind < 2; ++kind) {
    if (n[kind] == 0) continue;
    pixels[kind] = std::make_shared<OwnedTensor>(Shape{n[kind], h[4 + kind * 3], h[5 + kind * 3], h[6 + kind * 3]}, DType::kF32);
    m.buffers.push_back(pixels[kind]);
    m.transfers.push_back(start_recv(jobs, pixels[kind]->view(), front, kJobPixelsTag));
  }
  if (!finish(m, alive)) {
    lost.keep(std::move(m));
    return std::nullopt;
  }
  size_t at = 0;
  for (int kind = 0; kind < 2; ++kind) {
    for (int64_t i = 0; i < n[kind]; ++i, at += 32) {
      MediaKey& k = job.media.keys[kind].emplace_back();
      std::copy(keys + at, keys + at + 32, k.digest.begin());
    }
    if (n[kind] > 0) job.media.pixels[kind] = std::move(*pixels[kind]);
  }
  return job;
}

bool send_reply(distributed::Communicator& replies, distributed::Communicator& data, int front, const ReplyInfo& info,
                const std::vector<bool>& encoded_flags, std::array<OwnedTensor, 2> rows, const PeerAlive& alive,
                LostMessages& lost) {
  WireMessage m;
  int64_t* h = own_buffer<int64_t>(m, kHeaderSize);
  const ReplyHeader header{info.id,           info.num_items[0],       info.num_items[1],       info.encoded[0],
                           info.encoded[1],   to_ns(info.encode_s[0]), to_ns(info.encode_s[1]), info.queued_items,
                           to_ns(info.busy_s), to_ns(info.uptime_s)};
  std::copy(header.begin(), header.end(), h);
  uint8_t* flags = own_buffer<uint8_t>(m, encoded_flags.size());
  std::copy(encoded_flags.begin(), encoded_flags.end(), flags);
  m.transfers.push_back(start_send(replies, Tensor(h, {kHeaderSize}, DType::kI64), front, kReplyTag));
  m.transfers.push_back(start_send(replies, Tensor(flags, {static_cast<int64_t>(encoded_flags.size())}, DType::kU8),
                                   front, kReplyFlagsTag));
  const bool on_gpu = !rows[0].device().is_cpu() || !rows[1].device().is_cpu();
  for (int kind = 0; kind < 2; ++kind) {
    if (info.num_items[kind] == 0) continue;
    auto owned = std::make_shared<OwnedTensor>(std::move(rows[kind]));
    m.transfers.push_back(start_send(data, owned->view(), front, kPayloadTag));
    m.buffers.push_back(std::move(owned));
  }
  if (on_gpu) cuda_stream_synchronize(Stream{});
  if (finish(m, alive)) return true;
  lost.keep(std::move(m));
  return false;
}

std::optional<ReceivedReply> recv_reply(distributed::Communicator& replies, distributed::Communicator& data, int encoder,
                                        int64_t rows_per_item, int64_t hidden, DType dtype, Device device,
                                        const PeerAlive& alive, LostMessages& lost) {
  ReceivedReply r;
  ReplyHeader h{};
  replies.recv(header_view(h), encoder, kReplyTag);  // probed: it is there
  r.info = {.id = h[0],
            .num_items = {h[1], h[2]},
            .encoded = {h[3], h[4]},
            .encode_s = {to_s(h[5]), to_s(h[6])},
            .queued_items = h[7],
            .busy_s = to_s(h[8]),
            .uptime_s = to_s(h[9])};
  WireMessage m;
  const size_t num_flags = static_cast<size_t>(h[1] + h[2]);
  uint8_t* flags = own_buffer<uint8_t>(m, num_flags);
  m.transfers.push_back(
      start_recv(replies, Tensor(flags, {static_cast<int64_t>(num_flags)}, DType::kU8), encoder, kReplyFlagsTag));
  const auto start = std::chrono::steady_clock::now();
  std::array<std::shared_ptr<OwnedTensor>, 2> rows;
  for (int kind = 0; kind < 2; ++kind) {
    if (r.info.num_items[kind] == 0) continue;
    rows[kind] = std::make_shared<OwnedTensor>(Shape{r.info.num_items[kind] * rows_per_item, hidden}, dtype, device);
    m.transfers.push_back(start_recv(data, rows[kind]->view(), encoder, kPayloadTag));
    m.buffers.push_back(rows[kind]);
  }
  if (!device.is_cpu()) cuda_stream_synchronize(Stream{});
  if (!finish(m, alive)) {
    lost.keep(std::move(m));
    return std::nullopt;
  }
  r.encoded_flags.assign(flags, flags + num_flags);
  for (int kind = 0; kind < 2; ++kind) {
    if (rows[kind] == nullptr) continue;
    r.rows[kind] = std::move(*rows[kind]);
    r.payload_bytes += static_cast<int64_t>(r.rows[kind].view().nbytes());
  }
  r.transfer_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

}  // namespace plm::serve::disagg
