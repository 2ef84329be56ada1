#include "serve/step_mirror.h"

#include <cstdint>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/check.h"
#include "model/text/mirrored_kv_cache.h"

namespace plm::serve {

namespace {

constexpr int kLeader = 0;

enum MessageType : int64_t { kCache = 1, kEncode = 2, kStep = 3, kStop = 4 };

// Every message starts with one of these (unused fields 0).
using Header = std::array<int64_t, 10>;

// Fields of one chunk in a kStep message.
enum ChunkField { kSequence, kStart, kLength, kLogits, kMediaEnd, kImageRows, kVideoRows, kTableLength, kFields };

template <typename T>
Tensor host_view(std::vector<T>& v, DType dtype) {
  return Tensor(v.data(), {static_cast<int64_t>(v.size())}, dtype);
}

// Followers wait here between steps, however long the leader is idle.
void broadcast_header(distributed::Communicator& c, Header& h) {
  c.wait_for_broadcast(Tensor(h.data(), {static_cast<int64_t>(h.size())}, DType::kI64), kLeader);
}

// Broadcasts a host vector whose size every rank knows already.
template <typename T>
void broadcast_vector(distributed::Communicator& c, std::vector<T>& v, DType dtype) {
  if (!v.empty()) c.broadcast(host_view(v, dtype), kLeader);
}

}  // namespace

StepPublisher::StepPublisher(MirrorChannel channel) : channel_(channel) {
  PLM_CHECK(channel_.control != nullptr && channel_.data != nullptr);
  PLM_CHECK_EQ(channel_.control->rank(), kLeader) << "only the leader publishes";
}

void StepPublisher::publish_cache(const model::KvCache& cache) {
  Header h{kCache, cache.num_blocks(), cache.block_size(), cache.max_len()};
  broadcast_header(*channel_.control, h);
}

void StepPublisher::publish_encode(const std::array<Tensor, 2>& pixels) {
  Header h{kEncode};
  for (int kind = 0; kind < 2; ++kind) {
    const Tensor& p = pixels[kind];
    if (!p.defined() || p.size(0) == 0) continue;
    PLM_CHECK(p.dtype() == DType::kF32 && p.device().is_cpu() && p.rank() == 4);
    for (int d = 0; d < 4; ++d) h[1 + kind * 4 + d] = p.size(d);
  }
  broadcast_header(*channel_.control, h);
  for (const Tensor& p : pixels) {
    if (p.defined() && p.size(0) > 0) channel_.control->broadcast(p, kLeader);
  }
}

void StepPublisher::publish_step(const model::StepBatch& batch, const std::vector<std::vector<int32_t>>& tables) {
  PLM_CHECK_EQ(tables.size(), batch.chunks.size());
  std::vector<int64_t> fields;
  std::vector<int32_t> ids, table_entries;
  int64_t rows[2] = {0, 0}, hidden = 0;
  for (size_t i = 0; i < batch.chunks.size(); ++i) {
    const model::StepChunk& c = batch.chunks[i];
    int64_t chunk_rows[2] = {0, 0};
    for (int kind = 0; kind < 2; ++kind) {
      for (const Tensor& segment : kind == 0 ? c.media.image : c.media.video) {
        chunk_rows[kind] += segment.size(0);
        hidden = segment.size(1);
      }
      rows[kind] += chunk_rows[kind];
    }
    fields.insert(fields.end(), {c.sequence, c.start, static_cast<int64_t>(c.ids.size()), static_cast<int64_t>(c.logits),
                                 c.media_end, chunk_rows[0], chunk_rows[1], static_cast<int64_t>(tables[i].size())});
    ids.insert(ids.end(), c.ids.begin(), c.ids.end());
    table_entries.insert(table_entries.end(), tables[i].begin(), tables[i].end());
  }
  Header h{kStep, static_cast<int64_t>(batch.chunks.size()), static_cast<int64_t>(ids.size()),
           static_cast<int64_t>(table_entries.size()), rows[0], rows[1], hidden};
  broadcast_header(*channel_.control, h);
  broadcast_vector(*channel_.control, fields, DType::kI64);
  broadcast_vector(*channel_.control, ids, DType::kI32);
  broadcast_vector(*channel_.control, table_entries, DType::kI32);
  // Each kind's rows in chunk order, gathered into one buffer.
  for (int kind = 0; kind < 2; ++kind) {
    if (rows[kind] == 0) continue;
    Tensor like;  // a segment: the rows' dtype and device
    for (const model::StepChunk& c : batch.chunks) {
      const std::vector<Tensor>& segments = kind == 0 ? c.media.image : c.media.video;
      if (!segments.empty()) like = segments.front();
    }
    if (!rows_[kind].view().defined() || rows_[kind].size(0) < rows[kind] || rows_[kind].dtype() != like.dtype()) {
      rows_[kind] = OwnedTensor({rows[kind], hidden}, like.dtype(), like.device());
    }
    const Tensor all = rows_[kind].view().slice(0, 0, rows[kind]);
    int64_t at = 0;
    for (const model::StepChunk& c : batch.chunks) {
      for (const Tensor& segment : kind == 0 ? c.media.image : c.media.video) {
        copy_tensor(all.slice(0, at, at + segment.size(0)), segment);
        at += segment.size(0);
      }
    }
    channel_.data->broadcast(all, kLeader);
  }
}

void StepPublisher::publish_stop() {
  Header h{kStop};
  broadcast_header(*channel_.control, h);
}

namespace {

// The follower's side of one kEncode message: the same encode_media calls as the leader's (their rows are not
// kept: the step's rows come with its batch).
void follow_encode(const model::PlmModel& model, distributed::Communicator& control, const Header& h) {
  for (int kind = 0; kind < 2; ++kind) {
    const int64_t* d = &h[1 + kind * 4];
    if (d[0] == 0) continue;
    OwnedTensor pixels({d[0], d[1], d[2], d[3]}, DType::kF32);
    control.broadcast(pixels, kLeader);
    model.encode_media(pixels);
  }
}

// The follower's side of one kStep message: the leader's batch, with this rank's copies of its media rows.
void follow_step(const model::PlmModel& model, const MirrorChannel& channel, const Header& h,
                 model::MirroredKvCache& cache, model::StepOutput& out) {
  const int64_t num_chunks = h[1], rows[2] = {h[4], h[5]}, hidden = h[6];
  std::vector<int64_t> fields(static_cast<size_t>(num_chunks * kFields));
  std::vector<int32_t> ids(static_cast<size_t>(h[2])), table_entries(static_cast<size_t>(h[3]));
  broadcast_vector(*channel.control, fields, DType::kI64);
  broadcast_vector(*channel.control, ids, DType::kI32);
  broadcast_vector(*channel.control, table_entries, DType::kI32);
  OwnedTensor media[2];
  for (int kind = 0; kind < 2; ++kind) {
    if (rows[kind] == 0) continue;
    media[kind] = OwnedTensor({rows[kind], hidden}, model.dtype(), model.device());
    channel.data->broadcast(media[kind], kLeader);
  }

  model::StepBatch batch;
  model::TokenBatch tokens;
  std::vector<std::vector<int32_t>> tables;
  int64_t id_at = 0, table_at = 0, row_at[2] = {0, 0};
  for (int64_t i = 0; i < num_chunks; ++i) {
    const int64_t* f = &fields[static_cast<size_t>(i * kFields)];
    model::StepChunk& c = batch.chunks.emplace_back();
    c.sequence = f[kSequence];
    c.start = f[kStart];
    c.ids.assign(ids.begin() + id_at, ids.begin() + id_at + f[kLength]);
    c.logits = static_cast<model::ChunkLogits>(f[kLogits]);
    c.media_end = f[kMediaEnd];
    for (int kind = 0; kind < 2; ++kind) {
      const int64_t n = f[kImageRows + kind];
      if (n == 0) continue;
      (kind == 0 ? c.media.image : c.media.video).push_back(media[kind].view().slice(0, row_at[kind], row_at[kind] + n));
      row_at[kind] += n;
    }
    tables.emplace_back(table_entries.begin() + table_at, table_entries.begin() + table_at + f[kTableLength]);
    tokens.chunks.push_back({c.sequence, c.start, f[kLength]});
    id_at += f[kLength];
    table_at += f[kTableLength];
  }
  cache.set_tables(tokens, std::move(tables));
  // An error (the same on every rank: the inputs are the leader's) is the leader's to report.
  model.step(batch, cache, out).IgnoreError();
}

}  // namespace

absl::Status follow_steps(const model::PlmModel& model, MirrorChannel channel) {
  PLM_CHECK(channel.control != nullptr && channel.data != nullptr);
  Header h{};
  broadcast_header(*channel.control, h);
  if (h[0] == kStop) {
    return absl::AbortedError("the leader (rank 0) stopped before serving; its log has the reason");
  }
  PLM_CHECK_EQ(h[0], kCache) << "step mirror: unexpected first message";
  model::MirroredKvCache cache(model.kv_layout(), h[1], h[2], h[3], model.kv_dtype(), model.device());
  model::StepOutput out;
  while (true) {
    broadcast_header(*channel.control, h);
    switch (h[0]) {
      case kEncode: follow_encode(model, *channel.control, h); break;
      case kStep: follow_step(model, channel, h, cache, out); break;
      case kStop: return absl::OkStatus();
      default: PLM_CHECK(false) << "step mirror: unknown message " << h[0];
    }
  }
}

}  // namespace plm::serve
