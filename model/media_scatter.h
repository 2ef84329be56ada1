// Media scatter (spec/plm_spec.md §2.1): the projected rows of every image tile and video frame replace the
// embeddings of the <|image|> / <|video|> placeholder tokens, images then videos, each in prompt order.
// The backward gathers the gradient rows at the same positions. The rows come as one tensor per kind
// (MediaEmbeddings) or as segments (MediaRows: e.g. cached per-tile rows, or the part of them one prefill
// chunk covers), which fill the placeholders one after the other.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "core/tensor.h"

namespace plm::model {

// Projected media rows for one forward, on the model's device; either may be undefined.
struct MediaEmbeddings {
  Tensor image;  // (image placeholder count, H): every image tile's tokens, images in prompt order
  Tensor video;  // (video placeholder count, H)
};

// Projected media rows as segments, each (rows, H) on the model's device; their rows, segment after segment,
// fill the placeholders of their kind in order.
struct MediaRows {
  std::vector<Tensor> image;
  std::vector<Tensor> video;
};

struct MediaTokens {
  int32_t image = 128002;
  int32_t video = 128003;
};

// embeddings (T, H) rows at placeholders = the media rows. An error when a placeholder count differs from
// the rows given.
absl::Status scatter_media(Tensor embeddings, const std::vector<int32_t>& ids, const MediaEmbeddings& media,
                           const MediaTokens& tokens, Stream s = {});
absl::Status scatter_media(Tensor embeddings, std::span<const int32_t> ids, const MediaRows& media,
                           const MediaTokens& tokens, Stream s = {});
// dmedia rows (=) = dembeddings rows at the placeholders (the same mapping; counts already checked).
void gather_media_grad(const MediaEmbeddings& dmedia, Tensor dembeddings, const std::vector<int32_t>& ids,
                       const MediaTokens& tokens, Stream s = {});
// Zeroes the placeholder rows of dembeddings: their embedding-table lookups were replaced, so the table
// gets no gradient from them.
void zero_media_rows(Tensor dembeddings, const std::vector<int32_t>& ids, const MediaTokens& tokens, Stream s = {});

}  // namespace plm::model
