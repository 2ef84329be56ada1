#include "distributed/consistency.h"

#include <cstdint>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace plm::distributed {

namespace {

// FNV-1a: a fingerprint, not a security boundary.
int64_t fingerprint(const std::string& value) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : value) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return static_cast<int64_t>(h);
}

}  // namespace

absl::Status check_same_on_all_ranks(Communicator& comm, const std::string& what, const std::string& value) {
  int64_t mine = fingerprint(value);
  std::vector<int64_t> all(comm.size());
  comm.all_gather(Tensor(all.data(), {comm.size()}, DType::kI64), Tensor(&mine, {1}, DType::kI64));
  std::vector<int> differing;
  for (int r = 1; r < comm.size(); ++r) {
    if (all[r] != all[0]) differing.push_back(r);
  }
  if (differing.empty()) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(what, " differs between ranks: rank(s) ",
                                                    absl::StrJoin(differing, ", "), " of group '", comm.name(),
                                                    "' disagree with rank 0 (this is rank ", comm.rank(), ")"));
}

}  // namespace plm::distributed
