#include "model/media_scatter.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "core/kernels/ops.h"

namespace plm::model {

namespace {

// Calls f(token_rows, media_rows) for each run of consecutive `token` placeholders, media rows in order.
template <typename F>
void for_each_run(std::span<const int32_t> ids, int32_t token, F&& f) {
  int64_t next = 0;
  for (size_t i = 0; i < ids.size();) {
    if (ids[i] != token) {
      ++i;
      continue;
    }
    size_t end = i;
    while (end < ids.size() && ids[end] == token) ++end;
    const int64_t run = static_cast<int64_t>(end - i);
    f(static_cast<int64_t>(i), next, run);
    next += run;
    i = end;
  }
}

// Copies rows [from, from + count) of the segments' concatenation to dst rows [at, at + count), a piece
// per segment it spans. segment_starts: (segments + 1) the first concatenated row of each.
void copy_from_segments(Tensor dst, int64_t at, const std::vector<Tensor>& segments,
                        const std::vector<int64_t>& segment_starts, int64_t from, int64_t count, Stream s) {
  size_t k = std::upper_bound(segment_starts.begin(), segment_starts.end(), from) - segment_starts.begin() - 1;
  while (count > 0) {
    const int64_t offset = from - segment_starts[k];
    const int64_t n = std::min(count, segment_starts[k + 1] - from);
    if (n > 0) copy_tensor(dst.slice(0, at, at + n), segments[k].slice(0, offset, offset + n), s);
    at += n;
    from += n;
    count -= n;
    ++k;
  }
}

}  // namespace

absl::Status scatter_media(Tensor embeddings, std::span<const int32_t> ids, const MediaRows& media,
                           const MediaTokens& tokens, Stream s) {
  struct Kind {
    int32_t token;
    const std::vector<Tensor>& segments;
    const char* name;
    std::vector<int64_t> segment_starts = {0};
  };
  Kind kinds[] = {{tokens.image, media.image, "image"}, {tokens.video, media.video, "video"}};
  for (Kind& kind : kinds) {
    for (const Tensor& segment : kind.segments) {
      kind.segment_starts.push_back(kind.segment_starts.back() + segment.size(0));
    }
    const int64_t available = kind.segment_starts.back();
    const int64_t placeholders = std::count(ids.begin(), ids.end(), kind.token);
    if (placeholders != available) {
      return absl::InvalidArgumentError(absl::StrCat("the prompt has ", placeholders, " ", kind.name,
                                                     " placeholder tokens but the ", kind.name, "s give ", available,
                                                     " embedding rows"));
    }
  }
  for (const Kind& kind : kinds) {
    for_each_run(ids, kind.token, [&](int64_t at, int64_t from, int64_t run) {
      copy_from_segments(embeddings, at, kind.segments, kind.segment_starts, from, run, s);
    });
  }
  return absl::OkStatus();
}

absl::Status scatter_media(Tensor embeddings, const std::vector<int32_t>& ids, const MediaEmbeddings& media,
                           const MediaTokens& tokens, Stream s) {
  MediaRows rows;
  if (media.image.defined()) rows.image.push_back(media.image);
  if (media.video.defined()) rows.video.push_back(media.video);
  return scatter_media(embeddings, ids, rows, tokens, s);
}

void gather_media_grad(const MediaEmbeddings& dmedia, Tensor dembeddings, const std::vector<int32_t>& ids,
                       const MediaTokens& tokens, Stream s) {
  for (const auto& [token, rows_binding] : {std::pair{tokens.image, dmedia.image}, std::pair{tokens.video, dmedia.video}}) {
    const Tensor& rows = rows_binding;  // a plain reference the lambda can capture (clang < 16 cannot capture a binding)
    if (!rows.defined()) continue;
    for_each_run(ids, token, [&](int64_t at, int64_t from, int64_t run) {
      copy_tensor(rows.slice(0, from, from + run), dembeddings.slice(0, at, at + run), s);
    });
  }
}

void zero_media_rows(Tensor dembeddings, const std::vector<int32_t>& ids, const MediaTokens& tokens, Stream s) {
  for (const int32_t token : {tokens.image, tokens.video}) {
    for_each_run(ids, token, [&](int64_t at, int64_t, int64_t run) { fill(dembeddings.slice(0, at, at + run), 0.0f, s); });
  }
}

}  // namespace plm::model
