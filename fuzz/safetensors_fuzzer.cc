// Fuzzes a checkpoint's weight files as untrusted input: a safetensors file (length field, JSON header, dtypes,
// shapes, data offsets) or a model.safetensors.index.json naming shards. The first byte picks which ('0': the
// bytes are model.safetensors, '1': the index, beside two valid shards made at start-up); every tensor of a store
// that opens is then viewed, loaded and sliced as tensor parallelism does, so a header that passed validation
// but points outside its mapping, or shapes whose products overflow, show up under ASan / UBSan.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/check.h"
#include "core/tensor.h"
#include "fuzz/fuzz_scratch.h"
#include "model/weights/safetensors.h"
#include "model/weights/weight_store.h"

namespace {

using plm::DType;
using plm::model::WeightStore;

// Two shards an index may name: shard-a holds "a" (f32 (2, 3)) and "b" (bf16 (4)), shard-b holds "c" (i32 (2)).
void write_shards(const std::filesystem::path& dir) {
  const plm::OwnedTensor a({2, 3}, DType::kF32), b({4}, DType::kBF16), c({2}, DType::kI32);
  for (const plm::OwnedTensor* t : {&a, &b, &c}) std::memset(t->view().data(), 0x3c, t->view().nbytes());
  PLM_CHECK(plm::model::write_safetensors((dir / "shard-a.safetensors").string(), {{"a", a}, {"b", b}}).ok());
  PLM_CHECK(plm::model::write_safetensors((dir / "shard-b.safetensors").string(), {{"c", c}}).ok());
}

// Reads every tensor the ways the model loader does; errors are fine, crashes and UB are not.
void read_every_tensor(const WeightStore& store) {
  for (const std::string& name : store.names()) {
    const auto info = store.info(name);
    PLM_CHECK(info.ok()) << info.status();
    (void)store.view(name);
    const bool is_float = plm::dtype_is_float(info->dtype);
    (void)store.load(name, is_float ? std::optional<DType>(DType::kF32) : std::nullopt);
    for (const int dim : {0, -1}) (void)store.load_slice(name, dim, 1, 2);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::filesystem::path single_dir = plm::fuzz::scratch_dir("single");
  static const std::filesystem::path sharded_dir = [] {
    const std::filesystem::path dir = plm::fuzz::scratch_dir("sharded");
    write_shards(dir);
    return dir;
  }();
  if (size == 0) return 0;
  const bool index = data[0] % 2 == 1;
  const std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  const std::filesystem::path& dir = index ? sharded_dir : single_dir;
  plm::fuzz::write_file(dir / (index ? "model.safetensors.index.json" : "model.safetensors"), bytes);
  const auto store = WeightStore::open(dir.string());
  if (store.ok()) read_every_tensor(*store);
  return 0;
}
