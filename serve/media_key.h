// MediaKey: the content address of one image tile or video frame as the vision tower sees it: SHA-256 over its
// preprocessed pixels (the f32 values after thumb+tile / frame resize and normalisation) and their shape. Two
// requests whose media decode and preprocess to the same tile share one key, whatever file, data: URL or
// container the bytes came in; a different preprocessing setting changes the pixels and so the key.
// SHA-256 (not a fast non-cryptographic hash) so a client cannot craft a tile that collides with another
// client's and poison the shared encoder cache. Thread-safe (pure functions).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace plm::serve {

struct MediaKey {
  std::array<uint8_t, 32> digest{};

  bool operator==(const MediaKey&) const = default;
  std::string hex() const;  // 64 lowercase hex digits

  template <typename H>
  friend H AbslHashValue(H h, const MediaKey& key) {
    return H::combine_contiguous(std::move(h), key.digest.data(), key.digest.size());
  }
};

// One key per row of `pixels`: f32 (N, 3, h, w) on the host, contiguous.
std::vector<MediaKey> media_keys(Tensor pixels);

}  // namespace plm::serve
