#include "model/weights/tensor_slice.h"

#include "core/check.h"

namespace plm::model {

namespace {

// Block j of a contiguous tensor cut into `blocks` equal blocks along `dim`: a (outer, block elements) matrix view.
Tensor block(Tensor t, int dim, int blocks, int j) {
  PLM_CHECK(t.is_contiguous()) << "a tensor slice of a non-contiguous " << t.describe();
  const Shape& shape = t.shape();
  const int d = dim < 0 ? dim + shape.rank() : dim;
  PLM_CHECK(d >= 0 && d < shape.rank() && shape[d] % blocks == 0)
      << "dim " << dim << " of " << t.describe() << " does not cut into " << blocks << " blocks";
  int64_t outer = 1;
  for (int i = 0; i < d; ++i) outer *= shape[i];
  const int64_t width = t.numel() / outer / blocks;
  return t.reshape({outer, blocks * width}).slice(1, j * width, (j + 1) * width);
}

template <typename Copy>
void for_each_block(Tensor whole, Tensor part, const TensorSlice& slice, Copy&& copy) {
  PLM_CHECK_EQ(whole.numel() * static_cast<int64_t>(slice.parts.size()), part.numel() * slice.num_parts)
      << "a slice of " << slice.parts.size() << " / " << slice.num_parts << " blocks: " << part.describe() << " of "
      << whole.describe();
  const int num_blocks = static_cast<int>(slice.parts.size());
  for (int j = 0; j < num_blocks; ++j) {
    copy(block(whole, slice.dim, slice.num_parts, slice.parts[j]), block(part, slice.dim, num_blocks, j));
  }
}

}  // namespace

Shape TensorSlice::whole_shape(const Shape& slice_shape) const {
  Shape shape = slice_shape;
  if (whole()) return shape;
  shape[dim] = slice_shape[dim] / static_cast<int64_t>(parts.size()) * num_parts;
  return shape;
}

int TensorSlice::holders(int tp) const {
  const int64_t held = static_cast<int64_t>(tp) * static_cast<int64_t>(parts.size());
  PLM_CHECK(held % num_parts == 0 && held >= num_parts)
      << parts.size() << " of " << num_parts << " blocks per rank do not spread evenly over " << tp << " TP ranks";
  return static_cast<int>(held / num_parts);
}

void take_slice(Tensor part, Tensor whole, const TensorSlice& slice, Stream s) {
  for_each_block(whole, part, slice,
                 [&](Tensor whole_block, Tensor part_block) { copy_tensor(part_block, whole_block, s); });
}

void place_slice(Tensor whole, Tensor part, const TensorSlice& slice, Stream s) {
  for_each_block(whole, part, slice,
                 [&](Tensor whole_block, Tensor part_block) { copy_tensor(whole_block, part_block, s); });
}

}  // namespace plm::model
