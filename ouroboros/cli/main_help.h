// What main says when asked rather than told: its usage text, --help,
// --version and --list_plugins.
#ifndef OUROBOROS_CLI_MAIN_HELP_H_
#define OUROBOROS_CLI_MAIN_HELP_H_

#include <ostream>
#include <string>
#include <vector>

#include "ouroboros/api/plugin_loader.h"
#include "ouroboros/api/registry.h"

namespace ouroboros {

// main's usage text: the synopsis, examples, environment and exit codes.
extern const char kMainUsage[];

// Answers --help (main's own flags), --helpshort, --helpfull (every flag
// linked in) and --version on stdout: absl would exit 1 for them, and
// asking for help is not an error. True when it answered one.
bool AnswerHelpOrVersion(int argc, char** argv);

// The line --version prints: the version, commit, plugin ABI, LibTorch,
// Abseil, Protobuf and the BLAS in use.
std::string VersionLine();

// --list_plugins: every loaded plugin (kind, name, description, file), then
// the ones that failed to load and why.
void PrintPluginList(const PluginRegistry& registry,
                     const std::vector<PluginLoadReport>& reports,
                     std::ostream& out);

}  // namespace ouroboros

#endif  // OUROBOROS_CLI_MAIN_HELP_H_
