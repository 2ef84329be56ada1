// WeightStore: single files and sharded checkpoints (index json), zero-copy views, dtype conversion on
// load, per-rank slices for tensor parallelism, and the errors for broken shard sets.
#include "model/weights/weight_store.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <vector>

#include "tests/model/model_test_util.h"

namespace plm::model {
namespace {

using testing::FailsWith;
using testing::fresh_temp_dir;
using testing::write_file;

// (rows, cols) f32 with value 100 * row + col.
OwnedTensor grid(int64_t rows, int64_t cols) {
  OwnedTensor t({rows, cols}, DType::kF32);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) t.data_as<float>()[r * cols + c] = static_cast<float>(100 * r + c);
  }
  return t;
}

std::vector<float> values(Tensor t) {
  const float* p = t.data_as<float>();
  return std::vector<float>(p, p + t.numel());
}

// Two shards and an index, as save_pretrained writes them.
std::filesystem::path write_sharded(const std::string& index_json) {
  const auto dir = fresh_temp_dir();
  const OwnedTensor a = grid(2, 3), b = grid(4, 2);
  EXPECT_TRUE(write_safetensors((dir / "model-00001-of-00002.safetensors").string(), {{"a", a}}).ok());
  EXPECT_TRUE(write_safetensors((dir / "model-00002-of-00002.safetensors").string(), {{"b", b}}).ok());
  write_file(dir / "model.safetensors.index.json", index_json);
  return dir;
}

constexpr const char* kIndex = R"({"metadata": {"total_size": 56}, "weight_map": {
    "a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}})";

TEST(WeightStore, OpensASingleFileByPathOrDirectory) {
  const auto dir = fresh_temp_dir();
  const OwnedTensor w = grid(3, 4);
  ASSERT_TRUE(write_safetensors((dir / "model.safetensors").string(), {{"w", w}}).ok());
  for (const std::string& path : {dir.string(), (dir / "model.safetensors").string()}) {
    const absl::StatusOr<WeightStore> store = WeightStore::open(path);
    ASSERT_TRUE(store.ok()) << store.status();
    EXPECT_EQ(store->names(), std::vector<std::string>{"w"});
    EXPECT_EQ(store->num_files(), 1u);
    const absl::StatusOr<Tensor> view = store->view("w");
    ASSERT_TRUE(view.ok()) << view.status();
    EXPECT_EQ(view->shape(), Shape({3, 4}));
    EXPECT_EQ(values(*view), values(w));
  }
}

TEST(WeightStore, ViewsAreZeroCopy) {
  const auto dir = fresh_temp_dir();
  const OwnedTensor w = grid(3, 4);
  ASSERT_TRUE(write_safetensors((dir / "model.safetensors").string(), {{"w", w}}).ok());
  const absl::StatusOr<WeightStore> store = WeightStore::open(dir.string());
  ASSERT_TRUE(store.ok()) << store.status();
  // Both views point at the same mapped bytes; nothing was copied.
  EXPECT_EQ(store->view("w")->data(), store->view("w")->data());
  EXPECT_NE(store->load("w")->view().data(), store->view("w")->data());
}

TEST(WeightStore, OpensShardsThroughTheIndex) {
  const auto dir = write_sharded(kIndex);
  for (const std::string& path : {dir.string(), (dir / "model.safetensors.index.json").string()}) {
    const absl::StatusOr<WeightStore> store = WeightStore::open(path);
    ASSERT_TRUE(store.ok()) << store.status();
    EXPECT_EQ(store->num_files(), 2u);
    EXPECT_EQ(store->names(), (std::vector<std::string>{"a", "b"}));
    const absl::StatusOr<TensorInfo> info = store->info("b");
    ASSERT_TRUE(info.ok());
    EXPECT_EQ(info->shape, Shape({4, 2}));
    EXPECT_EQ(info->dtype, DType::kF32);
    EXPECT_EQ(std::filesystem::path(info->file).filename(), "model-00002-of-00002.safetensors");
    EXPECT_EQ(values(*store->load("b")), values(grid(4, 2)));
  }
}

TEST(WeightStore, ConvertsDTypesOnLoad) {
  const auto dir = fresh_temp_dir();
  OwnedTensor bf({4}, DType::kBF16);
  const float exact[] = {1.0f, -2.5f, 3.140625f, 65280.0f};  // all representable in bf16
  for (int i = 0; i < 4; ++i) bf.data_as<bf16>()[i] = bf16(exact[i]);
  OwnedTensor f32({2}, DType::kF32);
  f32.data_as<float>()[0] = 1.00390625f;   // halfway between two bf16 values: rounds to even (1.0)
  f32.data_as<float>()[1] = 1.01171875f;   // halfway: rounds to even (1.015625)
  OwnedTensor ids({2}, DType::kI32);
  ASSERT_TRUE(write_safetensors((dir / "model.safetensors").string(), {{"bf", bf}, {"f32", f32}, {"ids", ids}}).ok());
  const absl::StatusOr<WeightStore> store = WeightStore::open(dir.string());
  ASSERT_TRUE(store.ok()) << store.status();

  const absl::StatusOr<OwnedTensor> widened = store->load("bf", DType::kF32);
  ASSERT_TRUE(widened.ok()) << widened.status();
  EXPECT_EQ(widened->dtype(), DType::kF32);
  EXPECT_EQ(values(*widened), std::vector<float>(std::begin(exact), std::end(exact)));

  const absl::StatusOr<OwnedTensor> narrowed = store->load("f32", DType::kBF16);
  ASSERT_TRUE(narrowed.ok()) << narrowed.status();
  EXPECT_EQ(static_cast<float>(narrowed->data_as<bf16>()[0]), 1.0f);
  EXPECT_EQ(static_cast<float>(narrowed->data_as<bf16>()[1]), 1.015625f);

  const absl::StatusOr<OwnedTensor> half = store->load("bf", DType::kF16);
  ASSERT_TRUE(half.ok()) << half.status();
  EXPECT_EQ(static_cast<float>(half->data_as<f16>()[2]), 3.140625f);

  EXPECT_THAT(store->load("ids", DType::kF32), FailsWith("tensor 'ids'", "cannot convert i32 to f32"));
  EXPECT_TRUE(store->load("ids", DType::kI32).ok());
}

TEST(WeightStore, LoadsEqualSlicesPerRank) {
  const auto dir = fresh_temp_dir();
  const OwnedTensor w = grid(4, 6);
  OwnedTensor cube({2, 3, 4}, DType::kBF16);
  for (int i = 0; i < 24; ++i) cube.data_as<bf16>()[i] = bf16(static_cast<float>(i));
  ASSERT_TRUE(write_safetensors((dir / "model.safetensors").string(), {{"w", w}, {"cube", cube}}).ok());
  const absl::StatusOr<WeightStore> store = WeightStore::open(dir.string());
  ASSERT_TRUE(store.ok()) << store.status();

  // Rows (column-parallel weight): rank 1 of 2 holds rows 2..3.
  const absl::StatusOr<OwnedTensor> rows = store->load_slice("w", 0, 1, 2);
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_EQ(rows->shape(), Shape({2, 6}));
  EXPECT_EQ(values(*rows), (std::vector<float>{200, 201, 202, 203, 204, 205, 300, 301, 302, 303, 304, 305}));

  // Columns (row-parallel weight), with a negative dim: rank 2 of 3 holds columns 4..5.
  const absl::StatusOr<OwnedTensor> cols = store->load_slice("w", -1, 2, 3);
  ASSERT_TRUE(cols.ok()) << cols.status();
  EXPECT_EQ(cols->shape(), Shape({4, 2}));
  EXPECT_EQ(values(*cols), (std::vector<float>{4, 5, 104, 105, 204, 205, 304, 305}));

  // A middle dim, widened on the way: cube[:, 1:2, :] as f32.
  const absl::StatusOr<OwnedTensor> middle = store->load_slice("cube", 1, 1, 3, DType::kF32);
  ASSERT_TRUE(middle.ok()) << middle.status();
  EXPECT_EQ(middle->shape(), Shape({2, 1, 4}));
  EXPECT_EQ(values(*middle), (std::vector<float>{4, 5, 6, 7, 16, 17, 18, 19}));

  // The slices of all ranks put back together are the tensor.
  std::vector<float> joined;
  for (int rank = 0; rank < 4; ++rank) {
    const std::vector<float> part = values(*store->load_slice("w", 0, rank, 4));
    joined.insert(joined.end(), part.begin(), part.end());
  }
  EXPECT_EQ(joined, values(w));

  EXPECT_THAT(store->load_slice("w", 1, 0, 4), FailsWith("tensor 'w'", "dim 1 of shape (4, 6) does not split into 4 "
                                                         "equal parts: 6 % 4 = 2"));
  EXPECT_THAT(store->load_slice("w", 2, 0, 2), FailsWith("dim 2 is out of range for shape (4, 6)"));
  EXPECT_THAT(store->load_slice("w", 0, 2, 2), FailsWith("rank 2 is not in [0, 2)"));
}

TEST(WeightStore, MissingTensor) {
  const auto dir = write_sharded(kIndex);
  const absl::StatusOr<WeightStore> store = WeightStore::open(dir.string());
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_FALSE(store->contains("c"));
  EXPECT_THAT(store->view("c"), FailsWith(dir.string(), "no tensor named 'c'"));
  EXPECT_THAT(store->load("c"), FailsWith("no tensor named 'c'"));
  EXPECT_EQ(store->info("c").status().code(), absl::StatusCode::kNotFound);
}

TEST(WeightStoreErrors, MissingShardFile) {
  const auto dir = write_sharded(kIndex);
  std::filesystem::remove(dir / "model-00002-of-00002.safetensors");
  EXPECT_THAT(WeightStore::open(dir.string()),
              FailsWith("model.safetensors.index.json", "shard 'model-00002-of-00002.safetensors'", "cannot open"));
}

TEST(WeightStoreErrors, IndexPointsAtTheWrongShard) {
  const auto dir = write_sharded(R"({"weight_map": {"a": "model-00002-of-00002.safetensors",
                                                    "b": "model-00002-of-00002.safetensors"}})");
  EXPECT_THAT(WeightStore::open(dir.string()),
              FailsWith("weight_map puts tensor 'a' in shard 'model-00002-of-00002.safetensors'",
                        "which does not contain it"));
}

TEST(WeightStoreErrors, TensorInTwoShards) {
  const auto dir = write_sharded(kIndex);
  const OwnedTensor a = grid(1, 1);
  ASSERT_TRUE(write_safetensors((dir / "model-00002-of-00002.safetensors").string(), {{"a", a}, {"b", a}}).ok());
  EXPECT_THAT(WeightStore::open(dir.string()), FailsWith("tensor 'a' is in both"));
}

TEST(WeightStoreErrors, BadIndexOrDirectory) {
  EXPECT_THAT(WeightStore::open(write_sharded("{\"weight_map\": ").string()),
              FailsWith("model.safetensors.index.json", "malformed JSON"));
  EXPECT_THAT(WeightStore::open(write_sharded("{\"metadata\": {}}").string()),
              FailsWith("weight_map must be an object"));
  EXPECT_THAT(WeightStore::open(write_sharded(R"({"weight_map": {"a": "../x.safetensors"}})").string()),
              FailsWith("shard path '../x.safetensors' must stay inside the model directory"));
  const auto empty = fresh_temp_dir();
  EXPECT_THAT(WeightStore::open(empty.string()),
              FailsWith(empty.string(), "no model.safetensors.index.json or model.safetensors"));
}

}  // namespace
}  // namespace plm::model
