#include "ouroboros/config/config_checks.h"

#include <cmath>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace ouroboros {

absl::Status CheckFiniteAtLeast(absl::string_view field, double value,
                                double min, absl::string_view after_bound) {
  if (value >= min && std::isfinite(value)) return absl::OkStatus();
  return ConfigFieldError(
      field, absl::StrCat("must be a finite number >= ", min, after_bound,
                          " (got ", value, ")"));
}

absl::Status CheckFiniteAbove(absl::string_view field, double value,
                              double bound) {
  if (value > bound && std::isfinite(value)) return absl::OkStatus();
  return ConfigFieldError(field, absl::StrCat("must be a finite number > ",
                                              bound, " (got ", value, ")"));
}

absl::Status CheckOneOf(absl::string_view field, absl::string_view value,
                        std::initializer_list<absl::string_view> known,
                        absl::string_view noun) {
  for (absl::string_view name : known) {
    if (value == name) return absl::OkStatus();
  }
  return ConfigFieldError(
      field, absl::StrCat("unknown ", noun, " '", value,
                          "'; known: ", absl::StrJoin(known, ", ")));
}

}  // namespace ouroboros
