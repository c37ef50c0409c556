#include "ouroboros/api/plugin_loader.h"

#include <dlfcn.h>

#include <algorithm>
#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "ouroboros/api/plugin_api.h"

namespace ouroboros {
namespace fs = std::filesystem;

absl::Status PluginLoader::LoadFile(const std::string& path) {
  // RTLD_LOCAL: plugins cannot see each other's symbols; they share only the
  // core library they all link.
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* reason = dlerror();
    return absl::FailedPreconditionError(
        absl::StrCat(path, ": cannot load plugin: ",
                     reason != nullptr ? reason : "dlopen failed"));
  }
  using InfoFn = const PluginInfo* (*)();
  auto info_fn =
      reinterpret_cast<InfoFn>(dlsym(handle, "ouroboros_plugin_info"));
  if (info_fn == nullptr) {
    dlclose(handle);
    return absl::FailedPreconditionError(absl::StrCat(
        path,
        ": not an Ouroboros plugin (it exports no ouroboros_plugin_info(); "
        "link it with //ouroboros/api:plugin_entry)"));
  }
  const PluginInfo* info = info_fn();
  if (info == nullptr) {
    dlclose(handle);
    return absl::FailedPreconditionError(
        absl::StrCat(path, ": ouroboros_plugin_info() returned null"));
  }
  const uint32_t abi_version = info->abi_version;  // info dies with dlclose
  if (abi_version != kPluginAbiVersion) {
    dlclose(handle);
    return absl::FailedPreconditionError(absl::StrCat(
        path, ": plugin ABI version ", abi_version,
        " does not match this Ouroboros build (ABI ", kPluginAbiVersion,
        "); rebuild the plugin against the current ouroboros/ headers"));
  }
  absl::Status status = info->register_all(*registry_, path);
  if (!status.ok()) {
    // Its entries were rolled back; keep the handle (its code may have run
    // static initializers that hold pointers into it).
    return absl::Status(
        status.code(),
        absl::StrCat(path, ": plugin refused: ", status.message()));
  }
  return absl::OkStatus();
}

std::vector<PluginLoadReport> PluginLoader::LoadDirectories(
    const std::vector<std::string>& directories) {
  std::vector<PluginLoadReport> reports;
  for (const std::string& dir : directories) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) {
      reports.push_back({dir, absl::NotFoundError(absl::StrCat(
                                  dir, ": plugin directory does not exist"))});
      continue;
    }
    std::vector<std::string> files;
    auto options = fs::directory_options::follow_directory_symlink |
                   fs::directory_options::skip_permission_denied;
    for (fs::recursive_directory_iterator it(dir, options, ec), end;
         !ec && it != end; it.increment(ec)) {
      if (it->path().extension() == ".so" && it->is_regular_file(ec)) {
        files.push_back(it->path().string());
      }
    }
    if (ec) {
      reports.push_back({dir, absl::UnavailableError(absl::StrCat(
                                  dir, ": cannot list: ", ec.message()))});
    }
    std::sort(files.begin(), files.end());
    for (const std::string& file : files) {
      reports.push_back({file, LoadFile(file)});
    }
  }
  return reports;
}

std::vector<std::string> PluginSearchPath(
    const std::vector<std::string>& flag_dirs, const std::string& env_path,
    const std::string& default_dir) {
  if (!flag_dirs.empty()) return flag_dirs;
  std::vector<std::string> dirs =
      absl::StrSplit(env_path, ':', absl::SkipEmpty());
  if (!default_dir.empty()) dirs.push_back(default_dir);
  return dirs;
}

}  // namespace ouroboros
