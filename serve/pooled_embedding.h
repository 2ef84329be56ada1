// PooledEmbedding: the mean of the post-projector rows of a request's tiles / frames (every item once, as the
// model runner resolves it), for callers that keep one vector per request (plm caption --save-embeddings).
// The rows are copied to the host and summed in double. Engine thread only.
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace plm::serve {

class PooledEmbedding {
 public:
  // rows: (n, H) in any float dtype on any device; a synchronous copy to the host when on a GPU.
  void add(Tensor rows);
  // (H) f32: sum / rows; empty when no row was added.
  std::vector<float> mean() const;
  int64_t num_rows() const { return num_rows_; }

 private:
  std::vector<double> sum_;  // (H)
  int64_t num_rows_ = 0;
};

}  // namespace plm::serve
