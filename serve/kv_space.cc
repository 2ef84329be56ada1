#include "serve/kv_space.h"

#include "core/check.h"

#include "serve/dense_kv_space.h"
#include "serve/paged_kv_space.h"

namespace plm::serve {

absl::StatusOr<std::unique_ptr<KvSpace>> make_kv_space(const model::PlmModel& model, const KvSpaceConfig& config,
                                                       int max_num_seqs, int64_t context_tokens) {
  switch (config.kind) {
    case KvCacheKind::kPaged:
      return PagedKvSpace::create(model, config, max_num_seqs, context_tokens);
    case KvCacheKind::kDense: return DenseKvSpace::create(model, config.bytes, max_num_seqs, context_tokens);
  }
  PLM_CHECK(false) << "unhandled KvCacheKind " << static_cast<int>(config.kind);
  return nullptr;
}

}  // namespace plm::serve
