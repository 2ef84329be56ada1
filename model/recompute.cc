#include "model/recompute.h"

#include "core/check.h"

namespace plm::model {

namespace {

// The last tier a policy saves per block.
ActivationTier last_saved_tier(Recompute recompute) {
  switch (recompute) {
    case Recompute::kNone: return ActivationTier::kCheap;
    case Recompute::kSelective: return ActivationTier::kExpensive;
    case Recompute::kFull: return ActivationTier::kInput;
  }
  PLM_CHECK(false) << "unhandled Recompute " << static_cast<int>(recompute);
  return ActivationTier::kInput;
}

}  // namespace

std::string_view recompute_text(Recompute recompute) {
  switch (recompute) {
    case Recompute::kNone: return "none";
    case Recompute::kSelective: return "selective";
    case Recompute::kFull: return "full";
  }
  PLM_CHECK(false) << "unhandled Recompute " << static_cast<int>(recompute);
  return {};
}

bool ActivationPart::includes(ActivationTier tier, bool backward_only) const {
  const bool saved = tier != ActivationTier::kScratch && tier <= last_saved_tier(recompute);
  switch (kind) {
    case Kind::kInference: return !backward_only;
    case Kind::kSaved: return saved;
    case Kind::kWorkspace: return !saved;
  }
  PLM_CHECK(false) << "unhandled ActivationPart::Kind " << static_cast<int>(kind);
  return false;
}

}  // namespace plm::model
