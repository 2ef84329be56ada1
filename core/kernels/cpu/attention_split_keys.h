// The CPU attention forward for blocks too small for GEMMs (decode: one or a few queries per sequence):
// split over chunks of keys, each reading the keys and values of every head contiguously, with the
// partial softmaxes merged at the end. Called by attention_forward (attention_blocked.cc) on checked inputs.
#pragma once

#include "core/kernels/cpu/attention_geometry.h"

namespace plm::cpu {

// out (B, Sq, Hq, Dh) and lse (B, Hq, Sq) or null, from q, k, v as in kernel_signatures.inc.
void attention_forward_split_keys(const AttentionGeometry& g, const float* q, const float* k, const float* v,
                                  float* out, float* lse);

}  // namespace plm::cpu
