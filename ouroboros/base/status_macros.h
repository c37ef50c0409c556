// Early return on error, for functions that return absl::Status or
// absl::StatusOr<T>:
//
//   RETURN_IF_ERROR(WriteFileAtomically(path, text));
//   ASSIGN_OR_RETURN(RunConfig config, LoadRunConfigFile(path));
//   ASSIGN_OR_RETURN(const ModelEntry* entry, registry.FindModel(name));
//
// The status is returned unchanged; add context where the caller knows more
// (WithContext in errors.h) with an explicit `if` instead.
#ifndef OUROBOROS_BASE_STATUS_MACROS_H_
#define OUROBOROS_BASE_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define OUROBOROS_STATUS_CONCAT_INNER(a, b) a##b
#define OUROBOROS_STATUS_CONCAT(a, b) OUROBOROS_STATUS_CONCAT_INNER(a, b)

#define RETURN_IF_ERROR(expr)                                               \
  do {                                                                      \
    if (::absl::Status ouroboros_status_ = (expr); !ouroboros_status_.ok()) \
      return ouroboros_status_;                                             \
  } while (false)

#define OUROBOROS_ASSIGN_OR_RETURN_IMPL(statusor, lhs, expr) \
  auto statusor = (expr);                                    \
  if (!statusor.ok()) return std::move(statusor).status();   \
  lhs = *std::move(statusor)

// `lhs` may declare a variable ("RunConfig config") or name one ("config").
// Expands to several statements: not for the body of an unbraced if.
#define ASSIGN_OR_RETURN(lhs, expr) \
  OUROBOROS_ASSIGN_OR_RETURN_IMPL(  \
      OUROBOROS_STATUS_CONCAT(ouroboros_statusor_, __LINE__), lhs, expr)

#endif  // OUROBOROS_BASE_STATUS_MACROS_H_
