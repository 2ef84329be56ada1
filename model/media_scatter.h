// Media scatter (spec/plm_spec.md §2.1): the projected rows of every image tile and video frame replace the
// embeddings of the <|image|> / <|video|> placeholder tokens, images then videos, each in prompt order.
// The backward gathers the gradient rows at the same positions.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "core/tensor.h"

namespace plm::model {

// Projected media rows for one forward, on the model's device; either may be undefined.
struct MediaEmbeddings {
  Tensor image;  // (image placeholder count, H): every image tile's tokens, images in prompt order
  Tensor video;  // (video placeholder count, H)
};

struct MediaTokens {
  int32_t image = 128002;
  int32_t video = 128003;
};

// embeddings (T, H) rows at placeholders = the media rows. An error when a placeholder count differs from
// the rows given.
absl::Status scatter_media(Tensor embeddings, const std::vector<int32_t>& ids, const MediaEmbeddings& media,
                           const MediaTokens& tokens, Stream s = {});
// dmedia rows (=) = dembeddings rows at the placeholders (the same mapping; counts already checked).
void gather_media_grad(const MediaEmbeddings& dmedia, Tensor dembeddings, const std::vector<int32_t>& ids,
                       const MediaTokens& tokens, Stream s = {});
// Zeroes the placeholder rows of dembeddings: their embedding-table lookups were replaced, so the table
// gets no gradient from them.
void zero_media_rows(Tensor dembeddings, const std::vector<int32_t>& ids, const MediaTokens& tokens, Stream s = {});

}  // namespace plm::model
