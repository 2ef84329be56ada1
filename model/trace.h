// Named intermediates: model code calls trace(tracer, t, "vision_out", layer) at the points HF exposes,
// a no-op unless a Tracer is attached, so golden tests can compare any named activation with HF's.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace plm::model {

class Tracer {
 public:
  virtual ~Tracer() = default;
  // `layer` is -1 for model-level tensors. `t` is only valid during the call.
  virtual void record(const std::string& name, int layer, Tensor t) = 0;
};

inline void trace(Tracer* tracer, Tensor t, const std::string& name, int layer = -1) {
  if (tracer != nullptr) tracer->record(name, layer, t);
}

// Keeps host f32 copies of what it is asked to keep ("name" or "name.layer"), for tests and dumps.
class CollectingTracer final : public Tracer {
 public:
  explicit CollectingTracer(std::vector<std::string> keep) : keep_(std::move(keep)) {}
  void record(const std::string& name, int layer, Tensor t) override;
  // Recorded copies by key; a name traced several times (e.g. per batch) keeps every call, in order.
  const std::map<std::string, std::vector<OwnedTensor>>& recorded() const { return recorded_; }

 private:
  std::vector<std::string> keep_;
  std::map<std::string, std::vector<OwnedTensor>> recorded_;
};

}  // namespace plm::model
