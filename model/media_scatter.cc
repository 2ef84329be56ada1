#include "model/media_scatter.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "core/kernels/ops.h"

namespace plm::model {

namespace {

// Calls f(token_rows, media_rows) for each run of consecutive `token` placeholders, media rows in order.
template <typename F>
void for_each_run(const std::vector<int32_t>& ids, int32_t token, F&& f) {
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

}  // namespace

absl::Status scatter_media(Tensor embeddings, const std::vector<int32_t>& ids, const MediaEmbeddings& media,
                           const MediaTokens& tokens, Stream s) {
  struct Kind {
    int32_t token;
    Tensor rows;
    const char* name;
  };
  const Kind kinds[] = {{tokens.image, media.image, "image"}, {tokens.video, media.video, "video"}};
  for (const Kind& kind : kinds) {
    const int64_t available = kind.rows.defined() ? kind.rows.size(0) : 0;
    const int64_t placeholders = std::count(ids.begin(), ids.end(), kind.token);
    if (placeholders != available) {
      return absl::InvalidArgumentError(absl::StrCat("the prompt has ", placeholders, " ", kind.name,
                                                     " placeholder tokens but the ", kind.name, "s give ", available,
                                                     " embedding rows"));
    }
  }
  for (const Kind& kind : kinds) {
    for_each_run(ids, kind.token, [&](int64_t at, int64_t from, int64_t run) {
      copy_tensor(embeddings.slice(0, at, at + run), kind.rows.slice(0, from, from + run), s);
    });
  }
  return absl::OkStatus();
}

void gather_media_grad(const MediaEmbeddings& dmedia, Tensor dembeddings, const std::vector<int32_t>& ids,
                       const MediaTokens& tokens, Stream s) {
  for (const auto& [token, rows] : {std::pair{tokens.image, dmedia.image}, std::pair{tokens.video, dmedia.video}}) {
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
