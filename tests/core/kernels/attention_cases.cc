#include "tests/core/kernels/attention_cases.h"

#include <algorithm>
#include <sstream>
#include <vector>

#include "tests/core/test_util.h"

namespace plm::testing {
namespace {

const char* mask_name(AttentionMask m) {
  switch (m) {
    case AttentionMask::kFull: return "full";
    case AttentionMask::kCausal: return "causal";
    case AttentionMask::kCausalKvLens: return "causal_kv_lens";
    case AttentionMask::kSegments: return "segments";
    case AttentionMask::kCausalSegments: return "causal_segments";
    case AttentionMask::kDecode: return "decode";
    case AttentionMask::kChunkedPrefill: return "chunked_prefill";
  }
  return "?";
}

}  // namespace

int64_t AttentionCase::q_len() const {
  if (mask == AttentionMask::kDecode) return 1;
  return mask == AttentionMask::kChunkedPrefill ? (seq + 3) / 4 : seq;
}

std::string AttentionCase::name() const {
  std::ostringstream os;
  os << "B" << batch << "_S" << seq << "_" << num_q_heads << "q" << num_kv_heads << "kv_d" << head_dim << "_"
     << mask_name(mask);
  return os.str();
}

AttentionInputs make_attention_inputs(const AttentionCase& c, uint64_t seed) {
  const int64_t q_len = c.q_len(), kv_len = c.seq;
  AttentionInputs in;
  in.q = random_tensor({c.batch, q_len, c.num_q_heads, c.head_dim}, seed, -1.5f, 1.5f);
  in.k = random_tensor({c.batch, kv_len, c.num_kv_heads, c.head_dim}, seed + 1, -1.5f, 1.5f);
  in.v = random_tensor({c.batch, kv_len, c.num_kv_heads, c.head_dim}, seed + 2);
  in.options.causal = c.mask != AttentionMask::kFull && c.mask != AttentionMask::kSegments;
  if (c.mask == AttentionMask::kCausalKvLens || c.mask == AttentionMask::kDecode ||
      c.mask == AttentionMask::kChunkedPrefill) {
    std::vector<int32_t> lens;
    for (int64_t b = 0; b < c.batch; ++b) lens.push_back(static_cast<int32_t>(std::max(q_len, kv_len >> b)));
    in.kv_lens = tensor_from({c.batch}, lens);
    in.options.kv_lens = in.kv_lens;
  }
  if (c.mask == AttentionMask::kSegments || c.mask == AttentionMask::kCausalSegments) {
    std::vector<int32_t> ids;
    for (int64_t b = 0; b < c.batch; ++b) {
      int32_t id = 7;
      for (int64_t j = 0; j < kv_len; ++j) {
        if ((j * 13 + b * 5) % 41 == 0) id = (id * 3 + 1) % 11;
        ids.push_back(id);
      }
    }
    in.segments = tensor_from({c.batch, kv_len}, ids);
    in.options.segment_ids = in.segments;
  }
  return in;
}

}  // namespace plm::testing
