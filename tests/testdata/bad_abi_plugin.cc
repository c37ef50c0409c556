// A plugin built against another ABI version. Its register function must
// never be called: it aborts the test if it is.
#include <cstdlib>

#include "ouroboros/api/plugin_api.h"

namespace {

absl::Status MustNotBeCalled(ouroboros::PluginRegistry&, const std::string&) {
  std::abort();
}

}  // namespace

extern "C" __attribute__((visibility("default"))) const ouroboros::PluginInfo*
ouroboros_plugin_info() {
  static const ouroboros::PluginInfo info = {999, &MustNotBeCalled};
  return &info;
}
