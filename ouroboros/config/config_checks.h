// The range checks of a config's fields, for the core and every plugin, so
// that a bad value reads the same wherever it is:
//
//   RETURN_IF_ERROR(CheckAtLeast("model_config.hidden_size", c.hidden_size(),
//                                1));
//     -> model_config.hidden_size: must be >= 1 (got 0)
//   RETURN_IF_ERROR(CheckInRange("data_config.split.val_fraction",
//                                split.val_fraction(), 0, 1,
//                                Interval::kClosedOpen));
//     -> data_config.split.val_fraction: must be in [0, 1) (got 1.5)
//   RETURN_IF_ERROR(CheckOneOf("data_config.split.method", split.method(),
//                              {"holdout", "kfold"}, "split"));
//     -> data_config.split.method: unknown split 'kfolds'; known: holdout,
//     kfold
//
// Each is InvalidArgument through ConfigFieldError (errors.h); NaN fails
// every bound. The value keeps its type in the message (an int64 is never
// printed as 1e+08).
#ifndef OUROBOROS_CONFIG_CONFIG_CHECKS_H_
#define OUROBOROS_CONFIG_CONFIG_CHECKS_H_

#include <initializer_list>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "ouroboros/base/errors.h"

namespace ouroboros {

namespace config_checks_internal {
// The bound takes the value's type (no deduction from it: CheckAtLeast(f,
// int32_value, 1) and CheckAtLeast(f, double_value, 0) both compile).
template <typename T>
struct Same {
  using type = T;
};
template <typename T>
using BoundOf = typename Same<T>::type;
}  // namespace config_checks_internal

// value >= min. `after_bound` follows the bound in the message: what is
// counted or what the bound means (" epoch": "must be >= 1 epoch (got 0)";
// ", 0 meaning never": "must be >= 0, 0 meaning never (got -1)").
template <typename T>
absl::Status CheckAtLeast(absl::string_view field, T value,
                          config_checks_internal::BoundOf<T> min,
                          absl::string_view after_bound = "") {
  if (value >= min) return absl::OkStatus();
  return ConfigFieldError(field, absl::StrCat("must be >= ", min, after_bound,
                                              " (got ", value, ")"));
}

// value > bound.
template <typename T>
absl::Status CheckAbove(absl::string_view field, T value,
                        config_checks_internal::BoundOf<T> bound) {
  if (value > bound) return absl::OkStatus();
  return ConfigFieldError(
      field, absl::StrCat("must be > ", bound, " (got ", value, ")"));
}

// A finite value >= min (infinity and NaN refused).
absl::Status CheckFiniteAtLeast(absl::string_view field, double value,
                                double min, absl::string_view after_bound = "");

// A finite value > bound.
absl::Status CheckFiniteAbove(absl::string_view field, double value,
                              double bound);

// Which ends an interval holds: [low, high], (low, high), [low, high),
// (low, high].
enum class Interval { kClosed, kOpen, kClosedOpen, kOpenClosed };

template <typename T>
absl::Status CheckInRange(absl::string_view field, T value,
                          config_checks_internal::BoundOf<T> low,
                          config_checks_internal::BoundOf<T> high,
                          Interval interval = Interval::kClosed) {
  const bool low_closed =
      interval == Interval::kClosed || interval == Interval::kClosedOpen;
  const bool high_closed =
      interval == Interval::kClosed || interval == Interval::kOpenClosed;
  const bool above_low = low_closed ? value >= low : value > low;
  const bool below_high = high_closed ? value <= high : value < high;
  if (above_low && below_high) return absl::OkStatus();
  return ConfigFieldError(
      field, absl::StrCat("must be in ", low_closed ? "[" : "(", low, ", ",
                          high, high_closed ? "]" : ")", " (got ", value, ")"));
}

// `value` is one of `known`; else "unknown <noun> '<value>'; known: a, b".
absl::Status CheckOneOf(absl::string_view field, absl::string_view value,
                        std::initializer_list<absl::string_view> known,
                        absl::string_view noun);

}  // namespace ouroboros

#endif  // OUROBOROS_CONFIG_CONFIG_CHECKS_H_
