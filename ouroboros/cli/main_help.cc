#include "ouroboros/cli/main_help.h"

#include <torch/version.h>

#include <algorithm>
#include <iostream>
#include <string>
#include <vector>

#include "absl/base/config.h"
#include "absl/flags/internal/program_name.h"
#include "absl/flags/internal/usage.h"
#include "absl/strings/str_format.h"
#include "google/protobuf/stubs/common.h"
#include "ouroboros/api/plugin_api.h"
#include "ouroboros/base/threads.h"
#include "ouroboros/cli/version.h"

namespace ouroboros {

const char kMainUsage[] = R"(Trains and compares introverted neural networks.

Usage:
  main --model=NAME [--config=FILE] [--set=field.path=value ...] [flags]
  main --list_plugins

Examples:
  bazel run //ouroboros:main -- --model=mlp
  bazel run //ouroboros:main -- --config=configs/mlp.json --set=optim_config.lr=0.01
  bazel run //ouroboros:main -- --model=mlp --print_config > my.json
  bazel run //ouroboros:main -- --resume=saves/mlp_fashion/20261125-101500

Distributed: set RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT on every host
(or launch with torchrun --no_python); --nproc=N starts N ranks here.
SIGTERM or SIGINT: the ranks finish the step, rank 0 saves a checkpoint, and
the run exits 128 + the signal (143, 130); a second signal ends it at once.

Environment:
  OUROBOROS_PLUGIN_PATH   colon-separated directories to load plugins from
                          (before the ones built with main; --plugin_dir wins)
  OUROBOROS_DIST_TIMEOUT  seconds the rendezvous and every collective may
                          take before the run fails (default 120)
  GLOO_SOCKET_IFNAME      the network interfaces of a distributed run
  OUROBOROS_PYTHON        the python3 that draws plots/ at a run's end
                          (default /usr/bin/python3, with python3-matplotlib)
  GLOG_v=N, -v=N          verbose lines (with glog's prefix on every line)
  --log_dir=DIR           glog's log files there too (default: none)
  --flagfile=FILE         more flags, one per line (--set included)

Exit codes: 0 success, 2 bad input (flags, config, unknown plugin name, a
run directory in use), 1 the run itself failed, 143/130 stopped by
SIGTERM/SIGINT (resumable).

Every run draws plots/ when it ends (run_config.skip_plots: not); compare
runs with: tools/compare_runs RUN_DIR...)";

std::string VersionLine() {
  return absl::StrFormat(
      "ouroboros %s (commit %s, plugin ABI %d), LibTorch %s, Abseil "
      "LTS %d, Protobuf %s, BLAS: %s; compiled with -O2%s",
      kOuroborosVersion, BuildCommit(), kPluginAbiVersion, TORCH_VERSION,
      ABSL_LTS_RELEASE_VERSION,
      google::protobuf::internal::VersionString(GOOGLE_PROTOBUF_VERSION),
      DescribeBlas(),
#ifdef NDEBUG
      ""
#else
      ", assertions on (NDEBUG not defined)"
#endif
  );
}

bool AnswerHelpOrVersion(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (arg == "--") break;
    const bool full = arg == "--helpfull" || arg == "-helpfull";
    if (full || arg == "--help" || arg == "-help" || arg == "-h" ||
        arg == "--helpshort" || arg == "-helpshort") {
      absl::flags_internal::SetProgramInvocationName(argv[0]);
      // --helpfull: every flag linked in (absl's own too), not only main's.
      absl::flags_internal::FlagsHelp(
          std::cout, full ? "" : "ouroboros/main.",
          absl::flags_internal::HelpFormat::kHumanReadable, kMainUsage);
      std::cout << std::endl;
      return true;
    }
    if (arg == "--version" || arg == "-version") {
      std::cout << VersionLine() << "\n";
      return true;
    }
  }
  return false;
}

void PrintPluginList(const PluginRegistry& registry,
                     const std::vector<PluginLoadReport>& reports,
                     std::ostream& out) {
  std::vector<RegisteredPlugin> rows = registry.List();
  size_t name_width = 4;
  for (const auto& row : rows)
    name_width = std::max(name_width, row.name.size());
  out << absl::StrFormat("%-11s  %-*s  %s\n", "KIND", name_width, "NAME",
                         "DESCRIPTION  [FILE]");
  for (const auto& row : rows) {
    out << absl::StrFormat("%-11s  %-*s  %s  [%s]\n", PluginKindName(row.kind),
                           name_width, row.name, row.description, row.source);
  }
  if (rows.empty()) out << "(no plugins loaded)\n";
  bool header = false;
  for (const auto& report : reports) {
    if (report.status.ok()) continue;
    if (!header) out << "\nNot loaded:\n";
    header = true;
    out << "  " << report.status.message() << "\n";
  }
}

}  // namespace ouroboros
