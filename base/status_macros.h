// File: base/status_macros.h
// The two status-propagation macros Debian's abseil 20220623 lacks. Everything
// below the shim uses these; nothing else in the tree defines its own.

#ifndef DISKWIRE_BASE_STATUS_MACROS_H_
#define DISKWIRE_BASE_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

// Returns from the enclosing function with the status of `expr` when it is not
// OK.
#define DW_RETURN_IF_ERROR(expr)             \
  do {                                       \
    ::absl::Status dw_status_ = (expr);      \
    if (!dw_status_.ok()) return dw_status_; \
  } while (0)

// Evaluates `rexpr` (an absl::StatusOr<T>); returns its status when not OK,
// otherwise moves the value into `lhs` (a declaration such as `auto x` or an
// existing lvalue).
#define DW_ASSIGN_OR_RETURN(lhs, rexpr) \
  DW_ASSIGN_OR_RETURN_IMPL_(DW_CONCAT_(dw_statusor_, __LINE__), lhs, rexpr)

#define DW_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr)    \
  auto statusor = (rexpr);                                 \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = std::move(statusor).value()

#define DW_CONCAT_INNER_(a, b) a##b
#define DW_CONCAT_(a, b) DW_CONCAT_INNER_(a, b)

#endif  // DISKWIRE_BASE_STATUS_MACROS_H_
