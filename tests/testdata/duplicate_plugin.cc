// Registers a fresh name and then one that good_plugin already uses: the
// loader must refuse it whole (the fresh name rolled back).
#include <memory>

#include "ouroboros/api/plugin_api.h"

namespace {

absl::StatusOr<std::unique_ptr<ouroboros::Model>> MakeNothing(
    const ouroboros::ModelContext&) {
  return absl::UnimplementedError("test model");
}

}  // namespace

OUROBOROS_REGISTER_MODEL("fresh_model", "Registered before the clash",
                         MakeNothing, "", nullptr, nullptr);
OUROBOROS_REGISTER_MODEL("test_model", "Clashes with good_plugin", MakeNothing,
                         "", nullptr, nullptr);
