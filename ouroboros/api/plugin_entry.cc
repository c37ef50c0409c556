// Linked into every plugin .so: exports the entry point the loader looks up.
#include "ouroboros/api/plugin_api.h"

namespace {

absl::Status RegisterQueued(ouroboros::PluginRegistry& registry,
                            const std::string& source) {
  for (const auto& registration :
       ouroboros::plugin_internal::QueuedRegistrations()) {
    absl::Status status = registration(registry, source);
    if (!status.ok()) {
      registry.RemoveSource(source);  // all or nothing
      return status;
    }
  }
  return absl::OkStatus();
}

}  // namespace

extern "C" __attribute__((visibility("default"))) const ouroboros::PluginInfo*
ouroboros_plugin_info() {
  static const ouroboros::PluginInfo info = {ouroboros::kPluginAbiVersion,
                                             &RegisterQueued};
  return &info;
}
