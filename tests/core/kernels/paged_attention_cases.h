// Inputs for the paged attention tests (paged_attention_test.cc on CPU, cuda_paged_attention_test.cc):
// sequences of a mixed batch (decode tokens, prefill chunks, whole prompts) whose keys sit in shuffled blocks
// of a pool that holds NaN everywhere else, so a row read through a wrong block table entry shows.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <numeric>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "core/kernels/kernel_types.h"
#include "core/kernels/ops.h"
#include "core/tensor.h"
#include "tests/core/test_util.h"

namespace plm::testing {

struct PagedSequence {
  int64_t kv_len;  // keys after the step, its new ones included
  int64_t q_len;   // new tokens (its queries)
};

struct PagedCase {
  std::string name;
  int64_t block_size, num_q_heads, num_kv_heads, head_dim;
  std::vector<PagedSequence> sequences;
};

inline void PrintTo(const PagedCase& c, std::ostream* os) { *os << c.name; }

inline std::vector<PagedCase> paged_cases() {
  return {
      {"decode_gqa4_bs16", 16, 8, 2, 64, {{300, 1}, {157, 1}, {1, 1}, {16, 1}, {17, 1}}},
      {"mixed_prefill_decode_gqa2", 16, 4, 2, 64, {{50, 50}, {64, 1}, {300, 37}, {23, 5}}},
      {"block_size_7_dim40", 7, 3, 1, 40, {{20, 20}, {33, 1}, {70, 9}}},
      {"block_size_1", 1, 2, 2, 32, {{5, 5}, {9, 2}}},
      {"long_prefill_gqa4_dim128", 16, 8, 2, 128, {{300, 300}, {520, 260}}},
      {"sequence_without_queries", 16, 4, 2, 64, {{10, 0}, {12, 3}}},
      // Group 4: one query takes the split-keys path, two the GEMM path, in one call.
      {"split_keys_and_gemm_paths", 16, 4, 1, 64, {{100, 1}, {100, 2}, {37, 3}, {600, 1}}},
  };
}

// Host tensors of one case: dense keys per sequence, the pool they were scattered into, and the batch.
struct PagedInputs {
  std::vector<OwnedTensor> keys, values;  // per sequence (1, kv_len, Hkv, Dh), the dense oracle's layout
  std::vector<OwnedTensor> queries;       // per sequence (1, q_len, Hq, Dh)
  OwnedTensor q;                          // (T, Hq, Dh) packed, plus 2 rows no sequence owns
  OwnedTensor k_new, v_new;               // (K, Hkv, Dh) every sequence's keys, in order
  OwnedTensor slots;                      // (K) i32 their rows in the pool
  OwnedTensor block_tables;               // (B, max_blocks) i32, -1 past a sequence's blocks
  OwnedTensor query_starts, kv_lens;      // (B + 1), (B) i32
  int64_t num_blocks = 0, max_query_len = 0;

  PagedAttentionBatch batch() const {
    return {.block_tables = block_tables, .query_starts = query_starts, .kv_lens = kv_lens,
            .max_query_len = max_query_len};
  }
};

// Values are rounded to dtype (f32 or bf16) and returned as f32, so both backends see the same numbers.
inline PagedInputs make_paged_inputs(const PagedCase& c, DType dtype, uint64_t seed) {
  PagedInputs in;
  const int64_t num_sequences = static_cast<int64_t>(c.sequences.size());
  const auto rounded = [&](Shape shape, uint64_t s, float lo, float hi) {
    return tensor_from(shape, to_vector(random_tensor(shape, s, lo, hi, dtype)));
  };
  int64_t max_blocks = 1, total_keys = 0, total_queries = 0;
  for (const PagedSequence& s : c.sequences) {
    max_blocks = std::max(max_blocks, (s.kv_len + c.block_size - 1) / c.block_size);
    in.num_blocks += (s.kv_len + c.block_size - 1) / c.block_size;
    total_keys += s.kv_len;
    total_queries += s.q_len;
    in.max_query_len = std::max(in.max_query_len, s.q_len);
  }
  in.num_blocks += 3;  // blocks no sequence uses
  std::vector<int32_t> pool(static_cast<size_t>(in.num_blocks));
  std::iota(pool.begin(), pool.end(), 0);
  std::shuffle(pool.begin(), pool.end(), std::mt19937_64(seed));

  const int64_t row = c.num_kv_heads * c.head_dim, q_row = c.num_q_heads * c.head_dim;
  in.q = rounded({total_queries + 2, c.num_q_heads, c.head_dim}, seed + 1, -1.5f, 1.5f);
  in.k_new = OwnedTensor({total_keys, c.num_kv_heads, c.head_dim}, DType::kF32);
  in.v_new = OwnedTensor({total_keys, c.num_kv_heads, c.head_dim}, DType::kF32);
  std::vector<int32_t> tables(static_cast<size_t>(num_sequences * max_blocks), -1), slots, starts{0}, lens;
  size_t next_block = 0;
  int64_t key_row = 0, query_row = 0;
  for (int64_t b = 0; b < num_sequences; ++b) {
    const PagedSequence& s = c.sequences[b];
    in.keys.push_back(rounded({1, s.kv_len, c.num_kv_heads, c.head_dim}, seed + 10 + 3 * b, -1.5f, 1.5f));
    in.values.push_back(rounded({1, s.kv_len, c.num_kv_heads, c.head_dim}, seed + 11 + 3 * b, -1.0f, 1.0f));
    OwnedTensor queries({1, s.q_len, c.num_q_heads, c.head_dim}, DType::kF32);
    std::copy_n(in.q.data_as<float>() + query_row * q_row, s.q_len * q_row, queries.data_as<float>());
    in.queries.push_back(std::move(queries));
    for (int64_t j = 0; j < s.kv_len; ++j) {
      if (j % c.block_size == 0) tables[b * max_blocks + j / c.block_size] = pool[next_block++];
      const int32_t block = tables[b * max_blocks + j / c.block_size];
      slots.push_back(static_cast<int32_t>(block * c.block_size + j % c.block_size));
    }
    std::copy_n(in.keys.back().data_as<float>(), s.kv_len * row, in.k_new.data_as<float>() + key_row * row);
    std::copy_n(in.values.back().data_as<float>(), s.kv_len * row, in.v_new.data_as<float>() + key_row * row);
    key_row += s.kv_len;
    query_row += s.q_len;
    starts.push_back(static_cast<int32_t>(query_row));
    lens.push_back(static_cast<int32_t>(s.kv_len));
  }
  in.slots = tensor_from({total_keys}, slots);
  in.block_tables = tensor_from({num_sequences, max_blocks}, tables);
  in.query_starts = tensor_from({num_sequences + 1}, starts);
  in.kv_lens = tensor_from({num_sequences}, lens);
  return in;
}

// A pool (num_blocks, block_size, Hkv, Dh) of `dtype` full of NaN, on the CPU.
inline OwnedTensor nan_pool(const PagedCase& c, int64_t num_blocks, DType dtype) {
  const Shape shape{num_blocks, c.block_size, c.num_kv_heads, c.head_dim};
  OwnedTensor f32 = tensor_from(shape, std::vector<float>(static_cast<size_t>(shape.numel()),
                                                          std::numeric_limits<float>::quiet_NaN()));
  if (dtype == DType::kF32) return f32;
  OwnedTensor out(shape, dtype);
  cast(out, f32);
  return out;
}

}  // namespace plm::testing
