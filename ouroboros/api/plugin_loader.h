// Finds plugin .so files, dlopen()s them and registers what they provide.
//
//   PluginLoader loader(&PluginRegistry::Global());
//   for (const PluginLoadReport& r : loader.LoadDirectories({dir})) {
//     if (!r.status.ok()) LOG(WARNING) << r.status;  // the others still load
//   }
//
// A plugin is refused, with a message naming its file, when dlopen() fails,
// when it exports no ouroboros_plugin_info(), when its ABI version differs from
// kPluginAbiVersion, or when one of its names is already taken.
#ifndef OUROBOROS_API_PLUGIN_LOADER_H_
#define OUROBOROS_API_PLUGIN_LOADER_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "ouroboros/api/registry.h"

namespace ouroboros {

struct PluginLoadReport {
  std::string path;
  absl::Status status;
};

class PluginLoader {
 public:
  explicit PluginLoader(PluginRegistry* registry) : registry_(registry) {}

  // Loads one plugin file. Loaded plugins stay loaded for the process's life
  // (the registry holds their factories).
  absl::Status LoadFile(const std::string& path);

  // Loads every *.so found under the directories (recursively, in sorted
  // order). A missing directory is reported as a NotFound entry.
  std::vector<PluginLoadReport> LoadDirectories(
      const std::vector<std::string>& directories);

 private:
  PluginRegistry* registry_;
};

// The directories main searches: `flag_dirs` if any were given; otherwise the
// entries of `env_path` (colon-separated, like OUROBOROS_PLUGIN_PATH) followed
// by `default_dir` (the plugins built with main).
std::vector<std::string> PluginSearchPath(
    const std::vector<std::string>& flag_dirs, const std::string& env_path,
    const std::string& default_dir);

}  // namespace ouroboros

#endif  // OUROBOROS_API_PLUGIN_LOADER_H_
