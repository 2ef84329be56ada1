// absl::Status plumbing for code above core/ (core itself stays absl-free so its CUDA test binaries
// build on a machine with only CUDA and GoogleTest).
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define PLM_STATUS_CONCAT_INNER_(a, b) a##b
#define PLM_STATUS_CONCAT_(a, b) PLM_STATUS_CONCAT_INNER_(a, b)

#define PLM_RETURN_IF_ERROR(expr)                    \
  do {                                               \
    ::absl::Status plm_status_ = (expr);             \
    if (!plm_status_.ok()) return plm_status_;       \
  } while (0)

#define PLM_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp.ok()) return std::move(tmp).status();   \
  lhs = std::move(*tmp)

#define PLM_ASSIGN_OR_RETURN(lhs, expr) \
  PLM_ASSIGN_OR_RETURN_IMPL_(PLM_STATUS_CONCAT_(plm_statusor_, __LINE__), lhs, expr)
