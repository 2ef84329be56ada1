#include "tests/model/training_samples.h"

#include "core/check.h"
#include "model/weights/weight_store.h"

namespace plm::model::testing {

std::string model_fixtures() { return std::string(PLM_SOURCE_DIR) + "/tests/fixtures/models/"; }

Sample load_sample(const std::string& input) {
  absl::StatusOr<WeightStore> store = WeightStore::open(model_fixtures() + "inputs/" + input + ".safetensors");
  PLM_CHECK(store.ok()) << store.status();
  Sample s;
  absl::StatusOr<OwnedTensor> ids = store->load("input_ids");
  PLM_CHECK(ids.ok()) << ids.status();
  s.ids.assign(ids->data_as<int32_t>(), ids->data_as<int32_t>() + ids->numel());
  s.video = input == "video";
  const std::string key = s.video ? "pixel_values_videos" : "pixel_values";
  if (store->contains(key)) {
    absl::StatusOr<OwnedTensor> p = store->load(key, DType::kF32);
    PLM_CHECK(p.ok()) << p.status();
    p->reshape({p->size(1), p->size(2), p->size(3), p->size(4)});
    s.pixels = std::move(*p);
  }
  return s;
}

TrainingBatch pack(const std::vector<const Sample*>& samples, std::vector<OwnedTensor>& storage) {
  TrainingBatch b;
  std::vector<const Tensor*> images, videos;
  for (const Sample* s : samples) {
    for (size_t i = 0; i < s->ids.size(); ++i) {
      const int32_t next = i + 1 < s->ids.size() ? s->ids[i + 1] : kIgnoreTarget;
      const bool media = next == 128002 || next == 128003;
      b.targets.push_back(media ? kIgnoreTarget : next);
    }
    b.ids.insert(b.ids.end(), s->ids.begin(), s->ids.end());
    b.lengths.push_back(static_cast<int64_t>(s->ids.size()));
    if (s->pixels.view().defined()) (s->video ? videos : images).push_back(&s->pixels.view());
  }
  const auto concat = [&](const std::vector<const Tensor*>& parts) -> Tensor {
    if (parts.empty()) return Tensor();
    int64_t n = 0;
    for (const Tensor* p : parts) n += p->size(0);
    OwnedTensor all({n, 3, parts[0]->size(2), parts[0]->size(3)}, DType::kF32);
    int64_t at = 0;
    for (const Tensor* p : parts) {
      copy_tensor(all.view().slice(0, at, at + p->size(0)), *p);
      at += p->size(0);
    }
    storage.push_back(std::move(all));
    return storage.back().view();
  };
  b.image_pixels = concat(images);
  b.video_pixels = concat(videos);
  return b;
}

void TinyTrainingTest::SetUp() {
  absl::StatusOr<std::unique_ptr<PlmModel>> model =
      PlmModel::load(model_fixtures() + "cls_tied", Device::cpu(), {}, {.for_training = true});
  ASSERT_TRUE(model.ok()) << model.status();
  model_ = std::move(*model);
  image_ = load_sample("image");
  video_ = load_sample("video");
  text_ = load_sample("text");
}

}  // namespace plm::model::testing
