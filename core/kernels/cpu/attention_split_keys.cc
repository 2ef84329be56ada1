// attention_forward_split_keys of attention_split_keys.h. Splitting by kv head instead walks k and v with a
// stride of Hkv * Dh floats, touching every page of the cache for a few rows each (measured 1.5-2x slower at
// 4096 cached keys even with software prefetch); splitting by keys streams them. Each chunk keeps (max, sum,
// sum of p v) per query row, merged as in flash decoding: out = sum_c e^(m_c - m) acc_c / sum_c e^(m_c - m) l_c.
#include "core/kernels/cpu/attention_split_keys.h"

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "core/kernels/cpu/vector_kernels.h"
#include "core/kernels/cpu/parallel.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace plm::cpu {

namespace {

constexpr int64_t kChunkKeys = 256;

// The partial softmax of every query row of one sequence (Sq x Hq, r = i * Hq + h) over one chunk of keys.
struct ChunkPartials {
  std::vector<float> maxes;  // (R) -inf where the row sees no key of the chunk
  std::vector<float> sums;   // (R)
  std::vector<float> acc;    // (R, Dh) sum of exp(s - max) v
};

float kv_dot(const VectorKernels& simd, const float* q, const float* k, int64_t n) { return simd.dot(q, k, n); }
float kv_dot(const VectorKernels& simd, const float* q, const bf16* k, int64_t n) { return simd.dot_bf16(q, k, n); }

float rounded_to_bf16(float x) { return static_cast<float>(bf16(x)); }

// The (Hkv, Dh) slab of key or value j as the chunk reads it: itself, or rounded to bf16 into `rounded` (f32 rows
// in the bf16 compute mode; a bf16 cache is rounded already).
template <typename KV>
const KV* kv_slab(const AttentionGeometry& g, const KV* kv, int64_t b, int64_t j, DType compute,
                  std::vector<float>& rounded) {
  const KV* slab = kv + g.kv_row(b, j, 0);
  if constexpr (std::is_same_v<KV, float>) {
    if (compute == DType::kBF16) {
      rounded.resize(static_cast<size_t>(g.num_kv_heads * g.head_dim));
      std::transform(slab, slab + rounded.size(), rounded.begin(), rounded_to_bf16);
      return rounded.data();
    }
  }
  return slab;
}

// The score and value loops of a chunk, key by key over its (Hkv, Dh) slabs (slab(j)): each key row is loaded
// (bf16 widened) once into registers and met by every query row of its kv head. For head dims that are
// multiples of 16 up to kMaxVectors x 16 (64, 80, 128 in PLM), in the bf16 compute mode: by process CPU time at
// 4096 cached keys (bench kernels, one thread) 17-22 % faster than the generic loops on a bf16 cache, but 1.45x
// slower than simd.dot on an f32 one, so the f32 oracle keeps the generic loops of attend_chunk.
#if defined(__x86_64__)
#pragma GCC push_options
#pragma GCC target("avx512f")
// GCC 12's AVX-512 intrinsics trip -Wuninitialized once inlined (GCC bug 105593; see gemm_bf16.cc).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
namespace avx512 {

constexpr int64_t kMaxVectors = 8;

bool handles(const AttentionGeometry& g, DType compute) {
  return compute == DType::kBF16 && best_simd_isa() == SimdIsa::kAvx512 && g.head_dim % 16 == 0 &&
         g.head_dim <= 16 * kMaxVectors;
}

inline __m512 load(const float* p) { return _mm512_loadu_ps(p); }
inline __m512 load(const bf16* p) {  // exact: bf16 is the top half of an f32
  const __m256i bits = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(bits), 16));
}

// scores[r * width + j - j0] = scale q_r . k_j for rows r = i * Hq + h of q_rows (q_len, Hq, Dh).
template <typename KV, typename Slab>
void chunk_scores(const AttentionGeometry& g, const float* q_rows, int64_t q_len, int64_t j0, int64_t j1,
                  const Slab& slab, float* scores, int64_t width) {
  const int64_t dim = g.head_dim, vectors = dim / 16, group = g.group_size();
  __m512 k_vec[kMaxVectors];
  for (int64_t j = j0; j < j1; ++j) {
    const KV* k_slab = slab(j);
    for (int64_t kv_head = 0; kv_head < g.num_kv_heads; ++kv_head) {
      for (int64_t v = 0; v < vectors; ++v) k_vec[v] = load(k_slab + kv_head * dim + 16 * v);
      for (int64_t i = 0; i < q_len; ++i) {
        for (int64_t h = kv_head * group; h < (kv_head + 1) * group; ++h) {
          const int64_t r = i * g.num_q_heads + h;
          const float* q = q_rows + r * dim;
          __m512 acc = _mm512_mul_ps(_mm512_loadu_ps(q), k_vec[0]);
          for (int64_t v = 1; v < vectors; ++v) acc = _mm512_fmadd_ps(_mm512_loadu_ps(q + 16 * v), k_vec[v], acc);
          scores[r * width + j - j0] = g.scale * _mm512_reduce_add_ps(acc);
        }
      }
    }
  }
}

// acc (rows, Dh) += p[r * width + j - j0] v_j over keys [j0, j1), skipping zero probabilities (masked keys).
template <typename KV, typename Slab>
void chunk_values(const AttentionGeometry& g, const float* p, int64_t q_len, int64_t j0, int64_t j1,
                  const Slab& slab, int64_t width, float* acc) {
  const int64_t dim = g.head_dim, vectors = dim / 16, group = g.group_size();
  __m512 v_vec[kMaxVectors];
  for (int64_t j = j0; j < j1; ++j) {
    const KV* v_slab = slab(j);
    for (int64_t kv_head = 0; kv_head < g.num_kv_heads; ++kv_head) {
      for (int64_t v = 0; v < vectors; ++v) v_vec[v] = load(v_slab + kv_head * dim + 16 * v);
      for (int64_t i = 0; i < q_len; ++i) {
        for (int64_t h = kv_head * group; h < (kv_head + 1) * group; ++h) {
          const int64_t r = i * g.num_q_heads + h;
          const float weight = p[r * width + j - j0];
          if (weight == 0.0f) continue;
          const __m512 w = _mm512_set1_ps(weight);
          float* out = acc + r * dim;
          for (int64_t v = 0; v < vectors; ++v) {
            _mm512_storeu_ps(out + 16 * v, _mm512_fmadd_ps(w, v_vec[v], _mm512_loadu_ps(out + 16 * v)));
          }
        }
      }
    }
  }
}

}  // namespace avx512
#pragma GCC diagnostic pop
#pragma GCC pop_options
#endif

// Keys [j0, j1) of sequence b for every query row of it; KV is float or bf16. compute kBF16: q, k, v and the
// probabilities rounded to bf16, the sums in f32.
template <typename KV>
void attend_chunk(const AttentionGeometry& g, const VectorKernels& simd, const float* q, const KV* k, const KV* v,
                  int64_t b, int64_t j0, int64_t j1, DType compute, ChunkPartials& part, std::vector<float>& scores) {
  const int64_t q_len = g.query_len(b), rows = q_len * g.num_q_heads, width = j1 - j0, dim = g.head_dim;
  const int64_t group = g.group_size();
  scores.resize(static_cast<size_t>(rows * width));
  // Sequence b's query rows r = i * Hq + h, (q_len, Hq, Dh) from q_row(b, 0, 0) in both layouts.
  thread_local std::vector<float> q_rounded, slab_rounded;
  const float* q_rows = q + g.q_row(b, 0, 0);
  if (compute == DType::kBF16) {
    q_rounded.resize(static_cast<size_t>(rows * dim));
    std::transform(q_rows, q_rows + rows * dim, q_rounded.begin(), rounded_to_bf16);
    q_rows = q_rounded.data();
  }
  const auto k_slab_of = [&](int64_t j) { return kv_slab(g, k, b, j, compute, slab_rounded); };
  const auto v_slab_of = [&](int64_t j) { return kv_slab(g, v, b, j, compute, slab_rounded); };
#if defined(__x86_64__)
  const bool vectorised = avx512::handles(g, compute);
  if (vectorised) avx512::chunk_scores<KV>(g, q_rows, q_len, j0, j1, k_slab_of, scores.data(), width);
#else
  constexpr bool vectorised = false;
#endif
  // Key by key over all kv heads: one contiguous (Hkv, Dh) slab of k per key.
  for (int64_t j = j0; j < j1 && !vectorised; ++j) {
    const KV* k_slab = k_slab_of(j);
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t h = r % g.num_q_heads;
      scores[r * width + j - j0] = g.scale * kv_dot(simd, q_rows + r * dim, k_slab + (h / group) * dim, dim);
    }
  }
  for (int64_t r = 0; r < rows; ++r) {
    const VisibleKeys keys = visible_keys(g, b, r / g.num_q_heads);
    float* row = scores.data() + r * width;
    const int64_t end = std::clamp<int64_t>(keys.end - j0, 0, width);
    for (int64_t j = 0; j < end; ++j) {
      if (!keys.contains(j0 + j)) row[j] = kAttentionNegInf;
    }
    part.maxes[r] = simd.row_max(row, end);
    const bool sees_keys = part.maxes[r] != kAttentionNegInf;
    part.sums[r] = sees_keys ? simd.exp_sum(row, end, part.maxes[r]) : 0.0f;
    std::fill(row + (sees_keys ? end : 0), row + width, 0.0f);
    if (compute == DType::kBF16) std::transform(row, row + end, row, rounded_to_bf16);  // after the f32 sum
  }
  std::fill(part.acc.begin(), part.acc.end(), 0.0f);
#if defined(__x86_64__)
  if (vectorised) avx512::chunk_values<KV>(g, scores.data(), q_len, j0, j1, v_slab_of, width, part.acc.data());
#endif
  for (int64_t j = j0; j < j1 && !vectorised; ++j) {
    const KV* v_slab = v_slab_of(j);
    for (int64_t r = 0; r < rows; ++r) {
      const float p = scores[r * width + j - j0];
      const KV* v_row = v_slab + ((r % g.num_q_heads) / group) * dim;
      float* acc = part.acc.data() + r * dim;
      for (int64_t d = 0; d < dim; ++d) acc[d] += p * static_cast<float>(v_row[d]);
    }
  }
}

// Index of the range [starts[x], starts[x + 1]) that holds `index`.
int64_t range_of(const std::vector<int64_t>& starts, int64_t index) {
  return std::upper_bound(starts.begin(), starts.end(), index) - starts.begin() - 1;
}

template <typename KV>
void split_keys(const AttentionGeometry& g, const float* q, const KV* k, const KV* v, float* out, float* lse,
                DType compute) {
  const VectorKernels& simd = vector_kernels(best_simd_isa());
  const int64_t dim = g.head_dim;
  // Per sequence of this path: the keys its last query sees (the most any of its queries sees) in chunks, and
  // its query rows (Sq x Hq), both numbered across sequences. Other sequences get none of either.
  std::vector<int64_t> first_chunk(static_cast<size_t>(g.batch + 1), 0), first_row(first_chunk);
  for (int64_t b = 0; b < g.batch; ++b) {
    const int64_t q_len = takes_split_keys(g, b) ? g.query_len(b) : 0;
    const int64_t n = q_len > 0 ? visible_keys(g, b, q_len - 1).end : 0;
    first_chunk[b + 1] = first_chunk[b] + (q_len > 0 ? std::max<int64_t>(1, (n + kChunkKeys - 1) / kChunkKeys) : 0);
    first_row[b + 1] = first_row[b] + q_len * g.num_q_heads;
  }
  if (first_row[g.batch] == 0) return;
  std::vector<ChunkPartials> partials(static_cast<size_t>(first_chunk[g.batch]));
#pragma omp parallel if (g.work() >= kMinParallelWork)
  {
    std::vector<float> scores;
#pragma omp for schedule(dynamic)
    for (int64_t c = 0; c < first_chunk[g.batch]; ++c) {
      const int64_t b = range_of(first_chunk, c);
      const int64_t rows = g.query_len(b) * g.num_q_heads;
      const int64_t n = visible_keys(g, b, g.query_len(b) - 1).end;
      const int64_t j0 = (c - first_chunk[b]) * kChunkKeys, j1 = std::min(j0 + kChunkKeys, n);
      ChunkPartials& part = partials[c];
      part.maxes.resize(static_cast<size_t>(rows));
      part.sums.resize(static_cast<size_t>(rows));
      part.acc.resize(static_cast<size_t>(rows * dim));
      attend_chunk(g, simd, q, k, v, b, j0, std::max(j0, j1), compute, part, scores);
    }
#pragma omp for
    for (int64_t row = 0; row < first_row[g.batch]; ++row) {
      const int64_t b = range_of(first_row, row), r = row - first_row[b];
      const int64_t i = r / g.num_q_heads, h = r % g.num_q_heads;
      float max_score = kAttentionNegInf;
      for (int64_t c = first_chunk[b]; c < first_chunk[b + 1]; ++c) {
        max_score = std::max(max_score, partials[c].maxes[r]);
      }
      float* out_row = out + g.q_row(b, i, h);
      std::fill_n(out_row, dim, 0.0f);
      if (max_score == kAttentionNegInf) {  // no visible key
        if (lse) lse[g.lse_index(b, h, i)] = kAttentionNegInf;
        continue;
      }
      float sum = 0.0f;
      for (int64_t c = first_chunk[b]; c < first_chunk[b + 1]; ++c) {
        const float weight = std::exp(partials[c].maxes[r] - max_score);  // 0 for a chunk the row does not see
        sum += weight * partials[c].sums[r];
        const float* acc = partials[c].acc.data() + r * dim;
        for (int64_t d = 0; d < dim; ++d) out_row[d] += weight * acc[d];
      }
      for (int64_t d = 0; d < dim; ++d) out_row[d] /= sum;
      if (lse) lse[g.lse_index(b, h, i)] = max_score + std::log(sum);
    }
  }
}

}  // namespace

void attention_forward_split_keys(const AttentionGeometry& g, const float* q, const float* k, const float* v,
                                  float* out, float* lse, DType compute) {
  split_keys(g, q, k, v, out, lse, compute);
}

void attention_forward_split_keys(const AttentionGeometry& g, const float* q, const bf16* k, const bf16* v,
                                  float* out, float* lse, DType compute) {
  split_keys(g, q, k, v, out, lse, compute);
}

}  // namespace plm::cpu
