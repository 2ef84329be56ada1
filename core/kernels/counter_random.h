// Counter-based random numbers: a value is a pure function of integer keys (splitmix64 finalizer), so the
// CPU and CUDA backends draw identical numbers, a backward redraws its forward's dropout mask from the same
// keys, and a resumed run draws what the uninterrupted one drew. Used by dropout_forward and by host-side
// initialisation (LoRA's kaiming-uniform A).
#pragma once

#include <cstdint>

#include "core/dtype.h"  // PLM_HOST_DEVICE

namespace plm {

// splitmix64's finalizer: a bijection of 64-bit values with full avalanche.
PLM_HOST_DEVICE inline uint64_t mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// A key for a pair, e.g. (sample key, token position) or (stream, element index).
PLM_HOST_DEVICE inline uint64_t mix64(uint64_t a, uint64_t b) { return mix64(mix64(a) ^ b); }

// A uniform float in [0, 1) with 24 random bits: exactly representable, never 1.
PLM_HOST_DEVICE inline float uniform01(uint64_t key) {
  return static_cast<float>(mix64(key) >> 40) * (1.0f / 16777216.0f);
}

// Whether inverted dropout with probability p keeps element `col` of a row whose key is row_key, at the site
// (projection) `salt`: kept with probability 1 - p.
PLM_HOST_DEVICE inline bool dropout_keeps(uint64_t row_key, uint64_t salt, int64_t col, float p) {
  return uniform01(mix64(row_key ^ mix64(salt), static_cast<uint64_t>(col))) >= p;
}

}  // namespace plm
