// WeightLoader: turns checkpoint tensors into the model's working tensors on one device, one tensor at a
// time, so peak memory is the model plus one tensor. Two dtypes: `dtype` for vectors and activations-like
// tensors (norm weights, biases, LayerScale, position embeddings) and `matrix dtype` for GEMM weights and
// embedding tables. On CPU matrices stay bf16 when the checkpoint stores bf16 (no value changes: the CPU
// GEMM widens them exactly in registers, and decode reads half the bytes); everything else is f32. In the CPU
// bf16 compute mode (`compute` kBF16) every matrix is bf16 (rounded when the checkpoint stores f32) and every
// linear computes in bf16 (Linear::compute).
// The loaded bytes live in a WeightStorage owned by the model; layers hold views into it. Every tensor loaded is
// recorded with the slice of the checkpoint tensor it is (model/weights/tensor_slice.h).
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/tensor.h"
#include "model/layers/linear.h"
#include "model/weights/tensor_slice.h"
#include "model/weights/weight_store.h"

namespace plm::model {

// Owns loaded weights. A moved OwnedTensor keeps its bytes, so views stay valid as the vector grows.
using WeightStorage = std::vector<OwnedTensor>;

class WeightLoader {
 public:
  // keep_bf16_matrices: on CPU, load bf16-stored matrices as bf16 (else as `dtype`; training needs f32).
  // slices: receives the slice of every tensor loaded, by name.
  WeightLoader(const WeightStore& store, WeightStorage& storage, TensorSlices& slices, Device device, DType dtype,
               bool keep_bf16_matrices = true, DType compute = DType::kF32)
      : store_(store),
        storage_(storage),
        slices_(slices),
        device_(device),
        dtype_(dtype),
        keep_bf16_matrices_(keep_bf16_matrices),
        compute_(compute) {}

  Device device() const { return device_; }
  DType dtype() const { return dtype_; }
  DType compute() const { return compute_; }

  absl::StatusOr<Tensor> tensor(const std::string& name) const;
  // Part `part` of `num_parts` equal contiguous parts of dim `dim` (tensor-parallel shards).
  absl::StatusOr<Tensor> tensor_part(const std::string& name, int dim, int part, int num_parts) const;
  // A GEMM weight or embedding table (or a part of one) in the matrix dtype.
  absl::StatusOr<Tensor> matrix(const std::string& name) const { return matrix_part(name, 0, 0, 1); }
  absl::StatusOr<Tensor> matrix_part(const std::string& name, int dim, int part, int num_parts) const;
  // `prefix` + "weight" (and + "bias" when has_bias).
  absl::StatusOr<Linear> linear(const std::string& prefix, bool has_bias) const;
  // A linear's weight part along dim 0 (column-parallel: output rows, with the matching bias part) or 1
  // (row-parallel: inputs; its bias, added once to the summed result, is loaded only with bias_on_this_rank).
  absl::StatusOr<Linear> linear_part(const std::string& prefix, int dim, int part, int num_parts,
                                     bool has_bias = false, bool bias_on_this_rank = true) const;
  // Parts `parts` of `num_parts` equal row blocks of a linear (weight and bias), stacked into one linear
  // in the given order: e.g. this rank's q, k and v heads of a fused qkv.
  absl::StatusOr<Linear> stacked_row_parts(const std::string& prefix, const std::vector<int>& parts, int num_parts,
                                           bool has_bias) const;

 private:
  absl::StatusOr<Tensor> load_part(const std::string& name, int dim, int part, int num_parts, DType dtype) const;
  absl::StatusOr<Tensor> stacked_parts(const std::string& name, const std::vector<int>& parts, int num_parts,
                                       DType dtype) const;
  DType matrix_dtype(const std::string& name) const;
  Tensor keep(OwnedTensor t) const;

  const WeightStore& store_;
  WeightStorage& storage_;
  TensorSlices& slices_;
  Device device_;
  DType dtype_;
  bool keep_bf16_matrices_;
  DType compute_;
};

}  // namespace plm::model
