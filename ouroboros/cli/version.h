// What `main --version` says about the build: the project's version and the
// commit the binary was built from.
#ifndef OUROBOROS_CLI_VERSION_H_
#define OUROBOROS_CLI_VERSION_H_

namespace ouroboros {

// Raised with every release of the core; the plugin ABI has its own number
// (plugin_api.h: kPluginAbiVersion).
inline constexpr char kOuroborosVersion[] = "0.5.0";

// The git commit (12 hex digits) of the source tree main was built from, or
// "unknown" (built outside a git checkout). Local changes on top of it are
// not marked.
const char* BuildCommit();

}  // namespace ouroboros

#endif  // OUROBOROS_CLI_VERSION_H_
