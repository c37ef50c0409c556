#include "ouroboros/cli/malloc_settings.h"

#include <malloc.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace ouroboros {

std::string KeepFreedMemory(bool keep) {
  if (!keep) return "glibc's defaults (--keep_freed_memory=false)";
  struct Setting {
    int param;
    const char* env;
    int value;
    const char* unit;  // how the value is shown: "MiB" (value / 1 MiB) or ""
  };
  constexpr int kMiB = 1 << 20;
  const Setting settings[] = {
      // Setting it turns glibc's adjustment off; 32 MiB is as high as the
      // adjustment goes.
      {M_MMAP_THRESHOLD, "MALLOC_MMAP_THRESHOLD_", 32 * kMiB, "MiB"},
      // And no allocation gets a mapping of its own, however large: a
      // tensor above 32 MiB (the gradient of a hypernetwork's 9M-parameter
      // output layer) would otherwise be fresh pages at every step, and
      // freed back to the kernel after it (3.4x the steps of model
      // continual's full hypernetwork; plugins/hypernetwork/README.md).
      {M_MMAP_MAX, "MALLOC_MMAP_MAX_", 0, ""},
      {M_TRIM_THRESHOLD, "MALLOC_TRIM_THRESHOLD_", 1024 * kMiB, "MiB"},
      {M_TOP_PAD, "MALLOC_TOP_PAD_", 256 * kMiB, "MiB"},
  };
  std::vector<std::string> in_force;
  for (const Setting& setting : settings) {
    if (std::getenv(setting.env) != nullptr) {
      in_force.push_back(absl::StrCat(setting.env, " from the environment"));
    } else if (mallopt(setting.param, setting.value) == 1) {
      in_force.push_back(*setting.unit == '\0'
                             ? absl::StrCat(setting.env, "=", setting.value)
                             : absl::StrCat(setting.env, "=",
                                            setting.value / kMiB, " ",
                                            setting.unit));
    }
  }
  return absl::StrCat("freed memory kept for reuse (",
                      absl::StrJoin(in_force, ", "), ")");
}

}  // namespace ouroboros
