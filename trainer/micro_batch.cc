#include "trainer/micro_batch.h"

#include "core/check.h"

namespace plm::trainer {

namespace {

// The samples' tensors (each (n, 3, h, w), possibly empty) concatenated along n on `device`.
OwnedTensor concat_pixels(const std::vector<const OwnedTensor*>& parts, Device device) {
  int64_t n = 0;
  const OwnedTensor* first = nullptr;
  for (const OwnedTensor* p : parts) {
    if (!p->view().defined() || p->size(0) == 0) continue;
    if (first == nullptr) first = p;
    PLM_CHECK(p->size(1) == first->size(1) && p->size(2) == first->size(2) && p->size(3) == first->size(3))
        << "pixel shapes differ between samples";
    n += p->size(0);
  }
  if (first == nullptr) return OwnedTensor();
  OwnedTensor all({n, first->size(1), first->size(2), first->size(3)}, first->dtype(), device);
  int64_t at = 0;
  for (const OwnedTensor* p : parts) {
    if (!p->view().defined() || p->size(0) == 0) continue;
    copy_tensor(all.view().slice(0, at, at + p->size(0)), p->view());
    at += p->size(0);
  }
  return all;
}

}  // namespace

MicroBatch pack_micro_batch(const std::vector<const data::SftSample*>& samples, Device device) {
  MicroBatch mb;
  model::TrainingBatch& b = mb.batch;
  std::vector<const OwnedTensor*> images, videos;
  for (const data::SftSample* s : samples) {
    const size_t n = s->ids.size();
    PLM_CHECK(s->label_mask.size() == n) << "label mask of " << s->label_mask.size() << " for " << n << " ids";
    for (size_t i = 0; i < n; ++i) {
      const bool labelled = i + 1 < n && s->label_mask[i + 1] != 0;
      b.targets.push_back(labelled ? s->ids[i + 1] : model::kIgnoreTarget);
    }
    b.ids.insert(b.ids.end(), s->ids.begin(), s->ids.end());
    b.lengths.push_back(static_cast<int64_t>(n));
    images.push_back(&s->image_pixels);
    videos.push_back(&s->video_pixels);
  }
  mb.image_pixels = concat_pixels(images, device);
  mb.video_pixels = concat_pixels(videos, device);
  if (mb.image_pixels.view().defined()) b.image_pixels = mb.image_pixels.view();
  if (mb.video_pixels.view().defined()) b.video_pixels = mb.video_pixels.view();
  return mb;
}

}  // namespace plm::trainer
