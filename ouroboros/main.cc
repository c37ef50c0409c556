// ouroboros main: the command line. Reads the flags, loads the plugins and
// starts the run (run_start.h), or its ranks (rank_launcher.h).
#include <signal.h>

#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "ouroboros/api/plugin_loader.h"
#include "ouroboros/api/registry.h"
#include "ouroboros/base/console_log.h"
#include "ouroboros/base/errors.h"
#include "ouroboros/base/status_macros.h"
#include "ouroboros/base/stop_signal.h"
#include "ouroboros/cli/flag_preparse.h"
#include "ouroboros/cli/main_help.h"
#include "ouroboros/cli/run_start.h"
#include "ouroboros/config/config.h"
#include "ouroboros/runs/run_dir.h"
#include "tools/cpp/runfiles/runfiles.h"

ABSL_FLAG(std::string, model, "",
          "Model plugin to run (overrides the config's \"model\"). With no "
          "--config, runs the model's embedded default config.");
ABSL_FLAG(std::string, optimizer, "",
          "Optimizer plugin (overrides optim_config.name).");
ABSL_FLAG(std::string, pipeline, "",
          "Pipeline plugin (overrides the config's \"pipeline\"; default "
          "train).");
ABSL_FLAG(std::string, config, "",
          "Run config (JSON). Relative paths are taken from the directory "
          "`bazel run` was called in.");
ABSL_FLAG(std::vector<std::string>, set, {},
          "field.path=value: override one config field, after the file is "
          "read; repeat for several (--set=optim_config.lr=0.01 "
          "--set=model_config.layer_sizes=[64,32]). Values are JSON; "
          "anything else is a string.");
ABSL_FLAG(std::optional<uint64_t>, seed, std::nullopt,
          "Seed for everything random (overrides the config's \"seed\").");
ABSL_FLAG(std::string, run_dir, "",
          "Directory for this run's outputs (must be empty or new). Default: "
          "<runs_root>/<run_name>/<timestamp>.");
ABSL_FLAG(std::string, resume, "",
          "Continue a stopped run: its run directory (newest checkpoint) or a "
          "checkpoint file. Reads the config saved beside the checkpoint "
          "(--set still applies) and keeps writing into the same run "
          "directory. --resume=auto with --run_dir=DIR: continue DIR's run "
          "if DIR holds a checkpoint of the same config, start it in DIR "
          "otherwise (for launchers that restart workers, e.g. torchrun "
          "--max_restarts; a different config is refused).");
ABSL_FLAG(std::string, runs_root, "saves",
          "Where run directories are created when --run_dir is not given.");
ABSL_FLAG(std::vector<std::string>, plugin_dir, {},
          "Directories to load plugins from, comma-separated (searched "
          "recursively for *.so). Default: the directories in "
          "$OUROBOROS_PLUGIN_PATH, then the plugins built with main.");
ABSL_FLAG(bool, list_plugins, false,
          "List every loaded plugin (kind, name, description, file) and the "
          "plugins that failed to load, then exit.");
ABSL_FLAG(bool, print_config, false,
          "Print the resolved config (after --set and the other overrides) "
          "and exit without running.");
ABSL_FLAG(int, nproc, 1,
          "Data-parallel training with this many ranks on this machine, each "
          "its own process (as torchrun --nproc_per_node): main starts them "
          "with RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT set. On several "
          "hosts, run main on each with those variables set instead.");
ABSL_FLAG(bool, keep_freed_memory, true,
          "Have malloc keep memory that tensors free for the next step "
          "instead of returning it to the system and faulting it in again "
          "(the SRWM default run: 8x faster on the 2-vCPU machines here). "
          "A MALLOC_TRIM_THRESHOLD_, MALLOC_MMAP_THRESHOLD_ or "
          "MALLOC_TOP_PAD_ in the environment wins for that setting.");
ABSL_FLAG(int, threads, 0,
          "Intra-op threads for LibTorch (OpenMP) and OpenBLAS. 0: measured "
          "at start-up over the cores (shared among the ranks on this "
          "machine: cores / LOCAL_WORLD_SIZE): a short probe times "
          "element-wise loops and matrix products with 1 thread and with "
          "the cores, and gives the cores to what is at least 1.25x as fast "
          "with them: to both pools when OpenBLAS is its OpenMP build, else "
          "to the one that scales better (two pools would contend); else 1 "
          "(a busy or non-scaling machine). log.txt says what it chose and "
          "why.");

namespace ouroboros {
namespace {

std::string DefaultPluginDir(const char* argv0) {
  std::string error;
  std::unique_ptr<bazel::tools::cpp::runfiles::Runfiles> runfiles(
      bazel::tools::cpp::runfiles::Runfiles::Create(argv0, &error));
  if (runfiles == nullptr) return "";
  return runfiles->Rlocation("ouroboros/plugins");
}

// The flags, checked before absl parses them (a bad one exits 2).
absl::StatusOr<StartOptions> ParseFlags(int argc, char** argv) {
  ASSIGN_OR_RETURN(PreParsedCommandLine words, PreParseCommandLine(argc, argv));
  std::vector<char*> absl_args;
  for (std::string& arg : words.absl_args) absl_args.push_back(arg.data());
  const int absl_argc = static_cast<int>(absl_args.size());
  std::vector<char*> positional =
      absl::ParseCommandLine(absl_argc, absl_args.data());
  if (positional.size() > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("unexpected argument '", positional[1], "' (see --help)"));
  }
  if (absl::GetFlag(FLAGS_threads) < 0) {
    return absl::InvalidArgumentError("--threads must be >= 0");
  }
  if (absl::GetFlag(FLAGS_nproc) < 1) {
    return absl::InvalidArgumentError("--nproc must be >= 1");
  }
  StartOptions options;
  options.model = absl::GetFlag(FLAGS_model);
  options.optimizer = absl::GetFlag(FLAGS_optimizer);
  options.pipeline = absl::GetFlag(FLAGS_pipeline);
  options.config_path = absl::GetFlag(FLAGS_config);
  options.overrides = std::move(words.overrides);
  options.seed = absl::GetFlag(FLAGS_seed);
  options.run_dir = absl::GetFlag(FLAGS_run_dir);
  options.resume = absl::GetFlag(FLAGS_resume);
  options.runs_root = absl::GetFlag(FLAGS_runs_root);
  options.threads = absl::GetFlag(FLAGS_threads);
  options.keep_freed_memory = absl::GetFlag(FLAGS_keep_freed_memory);
  options.nproc = absl::GetFlag(FLAGS_nproc);
  options.command_line.assign(argv + 1, argv + argc);
  return options;
}

// Every plugin on the search path (--plugin_dir, $OUROBOROS_PLUGIN_PATH,
// the plugins built with main).
std::vector<PluginLoadReport> LoadPlugins(PluginRegistry& registry,
                                          const char* argv0) {
  PluginLoader loader(&registry);
  const char* env_path = std::getenv("OUROBOROS_PLUGIN_PATH");
  std::vector<std::string> flag_dirs;
  for (const std::string& dir : absl::GetFlag(FLAGS_plugin_dir)) {
    flag_dirs.push_back(UserPath(dir));
  }
  return loader.LoadDirectories(PluginSearchPath(
      flag_dirs, env_path != nullptr ? env_path : "", DefaultPluginDir(argv0)));
}

absl::Status Run(int argc, char** argv) {
  if (AnswerHelpOrVersion(argc, argv)) return absl::OkStatus();
  ASSIGN_OR_RETURN(StartOptions options, ParseFlags(argc, argv));
  PluginRegistry& registry = PluginRegistry::Global();
  std::vector<PluginLoadReport> reports = LoadPlugins(registry, argv[0]);
  if (absl::GetFlag(FLAGS_list_plugins)) {
    PrintPluginList(registry, reports, std::cout);
    return absl::OkStatus();
  }
  for (const auto& report : reports) {
    if (!report.status.ok()) LOG(WARNING) << report.status.message();
  }
  ASSIGN_OR_RETURN(ResumePlan plan, PlanResume(options));
  ASSIGN_OR_RETURN(ResolvedRunSpec spec,
                   ResolveStartConfig(options, plan, registry));
  if (absl::GetFlag(FLAGS_print_config)) {
    std::cout << RunConfigToJson(spec.config);
    return absl::OkStatus();
  }
  return StartRun(options, plan, spec, registry);
}

}  // namespace
}  // namespace ouroboros

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(ouroboros::kMainUsage);
  google::InitGoogleLogging(argv[0]);
  ouroboros::InstallConsoleLog();
  ouroboros::InstallStopSignalHandlers();
  // A write to a peer that is gone (the socket of a rank that died) fails
  // with EPIPE, which Gloo reports as an error of the collective, instead
  // of SIGPIPE ending this process without a word.
  signal(SIGPIPE, SIG_IGN);
  absl::Status status = ouroboros::Run(argc, argv);
  if (absl::IsCancelled(status)) {
    // Not an error: the run did what a stop signal asks.
    std::cerr << status.message() << std::endl;
  } else if (!status.ok()) {
    std::cerr << "error: " << status.message() << std::endl;
  }
  return ouroboros::ExitCodeFor(status);
}
