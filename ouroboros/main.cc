// ouroboros main: loads the plugins, resolves the config and runs a pipeline.
#include <ATen/Parallel.h>
#include <ATen/Utils.h>
#include <signal.h>
#include <stdlib.h>
#include <torch/version.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/internal/program_name.h"
#include "absl/flags/internal/usage.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "glog/logging.h"
#include "google/protobuf/stubs/common.h"
#include "ouroboros/checkpoint.h"
#include "ouroboros/child_process.h"
#include "ouroboros/config.h"
#include "ouroboros/console_log.h"
#include "ouroboros/distributed.h"
#include "ouroboros/errors.h"
#include "ouroboros/json.h"
#include "ouroboros/plugin_api.h"
#include "ouroboros/plugin_loader.h"
#include "ouroboros/registry.h"
#include "ouroboros/run_dir.h"
#include "ouroboros/stop_signal.h"
#include "ouroboros/threads.h"
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
ABSL_FLAG(int, threads, 0,
          "Intra-op threads for LibTorch (OpenMP) and OpenBLAS. 0: measured "
          "at start-up: the cores (shared among the ranks on this machine: "
          "cores / LOCAL_WORLD_SIZE) if a 30 ms probe finds them at least "
          "1.25x as fast as one thread, else 1 (a busy or non-scaling "
          "machine).");

namespace ouroboros {
namespace {

constexpr char kUsage[] = R"(Trains and compares introverted neural networks.

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
  GLOG_v=N, -v=N          verbose lines (with glog's prefix on every line)
  --log_dir=DIR           glog's log files there too (default: none)
  --flagfile=FILE         more flags, one per line (--set included)

Exit codes: 0 success, 2 bad input (flags, config, unknown plugin name, a
run directory in use), 1 the run itself failed, 143/130 stopped by
SIGTERM/SIGINT (resumable).)";

std::string DefaultPluginDir(const char* argv0) {
  std::string error;
  std::unique_ptr<bazel::tools::cpp::runfiles::Runfiles> runfiles(
      bazel::tools::cpp::runfiles::Runfiles::Create(argv0, &error));
  if (runfiles == nullptr) return "";
  return runfiles->Rlocation("ouroboros/plugins");
}

// absl exits with status 1 on a bad flag; bad input must exit 2 with a clear
// message, so check every flag before absl parses them. Also pulls out the
// --set flags, which repeat and may contain commas.
// One command-line word and where it came from ("" or "flagfile F").
struct Arg {
  std::string text;
  std::string origin;
};

// The arguments with every --flagfile=F replaced by F's flags (absl's
// syntax: one flag per line, blank lines and lines starting with # skipped),
// so that they are checked here like the command line's: absl itself would
// ignore a --set in F, and exit 1 on an unknown flag there.
absl::Status ExpandFlagfiles(const std::vector<Arg>& in, int depth,
                             std::vector<Arg>* out) {
  for (const Arg& arg : in) {
    absl::string_view text = arg.text;
    if (!absl::ConsumePrefix(&text, "--flagfile=") &&
        !absl::ConsumePrefix(&text, "-flagfile=")) {
      out->push_back(arg);
      continue;
    }
    const std::string path = UserPath(std::string(text));
    if (depth > 8) {
      return absl::InvalidArgumentError(
          absl::StrCat("--flagfile=", text, ": flagfiles nest too deep"));
    }
    std::ifstream file(path);
    if (!file) {
      return absl::InvalidArgumentError(
          absl::StrCat("--flagfile=", text, ": cannot read ", path));
    }
    std::vector<Arg> lines;
    for (std::string line; std::getline(file, line);) {
      absl::string_view flag = absl::StripAsciiWhitespace(line);
      if (flag.empty() || flag.front() == '#') continue;
      lines.push_back({std::string(flag), absl::StrCat("flagfile ", path)});
    }
    if (absl::Status s = ExpandFlagfiles(lines, depth + 1, out); !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

// "" or " (in flagfile F)".
std::string Where(const Arg& arg) {
  return arg.origin.empty() ? "" : absl::StrCat(" (in ", arg.origin, ")");
}

absl::Status PreParseFlags(int argc, char** argv, std::vector<char*>* rest,
                           std::vector<std::string>* overrides) {
  // Outlives the parse: `rest` points into it.
  static std::vector<Arg>* expanded = new std::vector<Arg>;
  std::vector<Arg> given;
  for (int i = 1; i < argc; ++i) given.push_back({argv[i], ""});
  if (absl::Status s = ExpandFlagfiles(given, 0, expanded); !s.ok()) return s;
  std::vector<Arg>& args = *expanded;
  const int count = static_cast<int>(args.size());
  rest->push_back(argv[0]);
  for (int i = 0; i < count; ++i) {
    absl::string_view arg = args[i].text;
    if (arg == "--") {
      for (; i < count; ++i) rest->push_back(args[i].text.data());
      break;
    }
    absl::string_view body = arg;
    if (!absl::ConsumePrefix(&body, "--") && !absl::ConsumePrefix(&body, "-")) {
      return absl::InvalidArgumentError(
          absl::StrCat("unexpected argument '", arg, "'", Where(args[i]),
                       " (flags start with --; see --help)"));
    }
    absl::string_view name = body.substr(0, body.find('='));
    bool has_value = body.find('=') != absl::string_view::npos;
    std::string value =
        has_value ? std::string(body.substr(body.find('=') + 1)) : "";
    if (name == "set") {
      if (!has_value) {
        if (i + 1 >= count) {
          return absl::InvalidArgumentError("--set needs field.path=value");
        }
        value = args[++i].text;
      }
      overrides->push_back(value);
      continue;
    }
    // glog's flags, which absl does not know: -v=N (verbose lines, also
    // GLOG_v), --minloglevel=N, --log_dir=DIR (also log files there).
    if (name == "v" || name == "minloglevel" || name == "log_dir") {
      if (!has_value) {
        if (i + 1 >= count) {
          return absl::InvalidArgumentError(
              absl::StrCat("flag --", name, " needs a value", Where(args[i])));
        }
        value = args[++i].text;
      }
      int level = 0;
      if (name == "log_dir") {
        FLAGS_log_dir = UserPath(value);
        google::SetLogDestination(google::GLOG_INFO,
                                  (FLAGS_log_dir + "/main.log.").c_str());
      } else if (!absl::SimpleAtoi(value, &level) || level < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("flag --", name, "=", value, Where(args[i]),
                         ": expected a whole number >= 0"));
      } else if (name == "v") {
        FLAGS_v = level;
      } else {
        FLAGS_minloglevel = level;
      }
      continue;
    }
    if (name == "help" || name == "helpfull" || name == "helpshort" ||
        name == "helppackage" || name == "helpon" || name == "helpmatch" ||
        name == "version" || name == "only_check_args") {
      rest->push_back(args[i].text.data());  // absl's own usage flags
      continue;
    }
    absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    bool negated = false;
    if (flag == nullptr && absl::StartsWith(name, "no")) {
      flag = absl::FindCommandLineFlag(name.substr(2));
      negated = flag != nullptr && flag->IsOfType<bool>();
      if (!negated) flag = nullptr;
    }
    if (flag == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown flag --", name, Where(args[i]), " (see --help)"));
    }
    rest->push_back(args[i].text.data());
    if (flag->IsOfType<bool>()) {
      if (negated || !has_value) continue;
    } else if (!has_value) {
      if (i + 1 >= count) {
        return absl::InvalidArgumentError(
            absl::StrCat("flag --", name, " needs a value", Where(args[i])));
      }
      value = args[++i].text;
      rest->push_back(args[i].text.data());
    }
    std::string error;
    // Help flags are parsed again (and acted on) by absl below.
    if (!flag->ParseFrom(value, &error)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "flag --", name, "=", value, Where(args[i]), ": ", error));
    }
  }
  return absl::OkStatus();
}

// main --nproc=N: runs this same command as N ranks on this machine, in
// `run_dir` (already created, empty) or continuing `resume`. The job fails as
// soon as one rank fails; the others are stopped if they do not end by
// themselves (they fail too, once a collective finds the rank gone). A stop
// signal reaches every rank (ChildPool forwards it); they stop together.
absl::Status LaunchRanks(int argc, char** argv, int nproc,
                         const std::string& run_dir) {
  absl::StatusOr<std::string> self = SelfExecutable();
  if (!self.ok()) return self.status();
  absl::StatusOr<int> port = FreeLocalPort();
  if (!port.ok()) return port.status();
  std::vector<std::string> args = {*self};
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (absl::StartsWith(arg, "--nproc=") || absl::StartsWith(arg, "-nproc=")) {
      continue;
    }
    if (arg == "--nproc" || arg == "-nproc") {
      ++i;
      continue;
    }
    if (absl::StartsWith(arg, "--run_dir") ||
        absl::StartsWith(arg, "-run_dir")) {
      if (arg.find('=') == absl::string_view::npos) ++i;
      continue;
    }
    args.push_back(std::string(arg));
  }
  if (!run_dir.empty()) args.push_back("--run_dir=" + run_dir);
  LOG(INFO) << absl::StrFormat(
      "starting %d ranks (rendezvous 127.0.0.1:%d); rank 0 writes %s", nproc,
      *port, run_dir.empty() ? "into the resumed run" : run_dir);
  ChildPool pool(nproc);
  for (int rank = 0; rank < nproc; ++rank) {
    pool.Add({absl::StrCat("rank ", rank),
              args,
              /*output_path=*/"",
              /*timeout_seconds=*/0,
              {absl::StrCat("RANK=", rank), absl::StrCat("LOCAL_RANK=", rank),
               absl::StrCat("WORLD_SIZE=", nproc),
               absl::StrCat("LOCAL_WORLD_SIZE=", nproc),
               "MASTER_ADDR=127.0.0.1", absl::StrCat("MASTER_PORT=", *port)}});
  }
  int failed_rank = -1;
  auto failed_at = std::chrono::steady_clock::time_point::max();
  bool stopping = false;
  pool.Run(
      [&](ChildPool& p) {
        for (int rank = 0; rank < p.size() && failed_rank < 0; ++rank) {
          if (p.status(rank).state == ChildState::kFailed) {
            failed_rank = rank;
            failed_at = std::chrono::steady_clock::now();
          }
        }
        if (!stopping && std::chrono::steady_clock::now() - failed_at >
                             std::chrono::seconds(30)) {
          stopping = true;
          for (int rank = 0; rank < p.size(); ++rank) p.Stop(rank);
        }
      },
      std::chrono::milliseconds(50));
  if (pool.interrupted()) {
    return StoppedBySignal(
        absl::StrCat("(every rank); continue with "
                     "--resume=",
                     run_dir.empty() ? "<the run dir>" : run_dir));
  }
  if (failed_rank < 0) return absl::OkStatus();
  const ChildJobStatus& failed = pool.status(failed_rank);
  const std::string message = absl::StrCat(
      failed.term_signal != 0
          ? absl::StrFormat("rank %d was killed by signal %d (%s)", failed_rank,
                            failed.term_signal, strsignal(failed.term_signal))
          : absl::StrFormat("rank %d exited with code %d", failed_rank,
                            failed.exit_code),
      "; the distributed job failed");
  return failed.exit_code == 2 ? absl::InvalidArgumentError(message)
                               : absl::InternalError(message);
}

// --resume=auto found a checkpoint: it must be of the config the command
// asks for, or the restarted job would silently train something else.
absl::Status CheckSameConfig(const RunConfig& config,
                             const std::string& saved_path) {
  absl::StatusOr<RunConfig> saved = LoadRunConfigFile(saved_path, {});
  if (!saved.ok()) return WithContext(saved.status(), "--resume=auto");
  const std::string want = RunConfigToJson(config);
  const std::string have = RunConfigToJson(*saved);
  if (want == have) return absl::OkStatus();
  std::vector<std::string> want_lines = absl::StrSplit(want, '\n');
  std::vector<std::string> have_lines = absl::StrSplit(have, '\n');
  size_t i = 0;
  while (i < want_lines.size() && i < have_lines.size() &&
         want_lines[i] == have_lines[i]) {
    ++i;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "--resume=auto: ", saved_path,
      " is another config than this command's (first difference: saved '",
      i < have_lines.size() ? absl::StripAsciiWhitespace(have_lines[i]) : "",
      "', asked '",
      i < want_lines.size() ? absl::StripAsciiWhitespace(want_lines[i]) : "",
      "'); give a new --run_dir, or --resume=<run dir> to continue with the "
      "saved config"));
}

// --resume=auto with no checkpoint yet: start in `dir`, which may hold what
// an earlier attempt wrote before its first checkpoint, but nothing else.
absl::StatusOr<std::string> RestartRunDir(const std::string& dir) {
  std::error_code ec;
  if (!std::filesystem::exists(dir, ec) || std::filesystem::is_empty(dir, ec)) {
    return CreateRunDir(dir, "", "");
  }
  if (!std::filesystem::exists(dir + "/config.json", ec)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--run_dir=", dir,
        ": not empty and not a run directory (no config.json); refusing to "
        "start a run in it"));
  }
  return dir;
}

// A resumed run whose metrics.json says it reached the config's end (its
// epochs, or run_config.max_steps): the line to print instead of running.
std::optional<std::string> FinishedRun(const std::string& run_dir,
                                       const RunConfig& config) {
  absl::StatusOr<google::protobuf::Value> metrics =
      ReadJsonFile(run_dir + "/metrics.json");
  if (!metrics.ok()) return std::nullopt;
  const auto& fields = metrics->struct_value().fields();
  const auto number = [&](const char* key) {
    auto it = fields.find(key);
    return it == fields.end() ? 0.0 : it->second.number_value();
  };
  const double epochs = number("epochs");
  const double steps = number("steps");
  const int64_t max_steps = config.run_config().max_steps();
  // Stopped early, and the config asks for no more patience than it had.
  bool stopped_early = false;
  if (auto early = fields.find("early_stopping"); early != fields.end()) {
    const auto& e = early->second.struct_value().fields();
    auto stopped = e.find("stopped");
    auto patience = e.find("patience");
    stopped_early =
        stopped != e.end() && stopped->second.bool_value() &&
        patience != e.end() && config.score_config().patience() > 0 &&
        config.score_config().patience() <= patience->second.number_value();
  }
  if (!stopped_early && epochs < config.run_config().epochs() &&
      (max_steps <= 0 || steps < max_steps)) {
    return std::nullopt;
  }
  return absl::StrFormat(
      "%s: the run is finished (%g epochs, %g steps; metrics.json); nothing "
      "to do. To train further, resume with a larger "
      "--set=run_config.epochs=N.",
      run_dir, epochs, steps);
}

void PrintPluginList(const PluginRegistry& registry,
                     const std::vector<PluginLoadReport>& reports) {
  std::vector<RegisteredPlugin> rows = registry.List();
  size_t name_width = 4;
  for (const auto& row : rows)
    name_width = std::max(name_width, row.name.size());
  std::cout << absl::StrFormat("%-9s  %-*s  %s\n", "KIND", name_width, "NAME",
                               "DESCRIPTION  [FILE]");
  for (const auto& row : rows) {
    std::cout << absl::StrFormat("%-9s  %-*s  %s  [%s]\n",
                                 PluginKindName(row.kind), name_width, row.name,
                                 row.description, row.source);
  }
  if (rows.empty()) std::cout << "(no plugins loaded)\n";
  bool header = false;
  for (const auto& report : reports) {
    if (report.status.ok()) continue;
    if (!header) std::cout << "\nNot loaded:\n";
    header = true;
    std::cout << "  " << report.status.message() << "\n";
  }
}

absl::Status Run(int argc, char** argv) {
  // absl's --help, --helpfull and --version exit with status 1; asking for
  // help is not an error.
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
          absl::flags_internal::HelpFormat::kHumanReadable, kUsage);
      std::cout << std::endl;
      return absl::OkStatus();
    }
    if (arg == "--version" || arg == "-version") {
      std::cout << absl::StrFormat(
          "ouroboros main (plugin ABI %d), LibTorch %s, Abseil LTS %d, "
          "Protobuf %s; built %s with -O2%s\n",
          kPluginAbiVersion, TORCH_VERSION, ABSL_LTS_RELEASE_VERSION,
          google::protobuf::internal::VersionString(GOOGLE_PROTOBUF_VERSION),
          __DATE__,
#ifdef NDEBUG
          ""
#else
          ", assertions on (NDEBUG not defined)"
#endif
      );
      return absl::OkStatus();
    }
  }
  std::vector<char*> absl_args;
  std::vector<std::string> overrides;
  if (absl::Status s = PreParseFlags(argc, argv, &absl_args, &overrides);
      !s.ok()) {
    return s;
  }
  int absl_argc = static_cast<int>(absl_args.size());
  std::vector<char*> positional =
      absl::ParseCommandLine(absl_argc, absl_args.data());
  if (positional.size() > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("unexpected argument '", positional[1], "' (see --help)"));
  }

  if (absl::GetFlag(FLAGS_threads) < 0) {
    return absl::InvalidArgumentError("--threads must be >= 0");
  }

  PluginRegistry& registry = PluginRegistry::Global();
  PluginLoader loader(&registry);
  const char* env_path = getenv("OUROBOROS_PLUGIN_PATH");
  std::vector<std::string> flag_dirs;
  for (const std::string& dir : absl::GetFlag(FLAGS_plugin_dir)) {
    flag_dirs.push_back(UserPath(dir));
  }
  std::vector<PluginLoadReport> reports = loader.LoadDirectories(
      PluginSearchPath(flag_dirs, env_path != nullptr ? env_path : "",
                       DefaultPluginDir(argv[0])));

  if (absl::GetFlag(FLAGS_list_plugins)) {
    PrintPluginList(registry, reports);
    return absl::OkStatus();
  }
  for (const auto& report : reports) {
    if (!report.status.ok()) LOG(WARNING) << report.status.message();
  }

  // The config: the file given, or the model's embedded default.
  std::string model_name = absl::GetFlag(FLAGS_model);
  std::string config_path = absl::GetFlag(FLAGS_config);
  std::string resume_checkpoint;
  std::string resume_run_dir;
  std::string resume = absl::GetFlag(FLAGS_resume);
  const bool resume_auto = resume == "auto";
  // --resume=auto: the saved config this run must match, when there is one.
  std::string auto_saved_config;
  if (resume_auto) {
    const std::string dir = UserPath(absl::GetFlag(FLAGS_run_dir));
    if (dir.empty()) {
      return absl::InvalidArgumentError(
          "--resume=auto needs --run_dir=DIR: the directory the run continues "
          "in, or starts in when it holds no checkpoint yet");
    }
    resume.clear();
    if (FindCheckpoint(dir).ok()) {
      resume = dir;
      auto_saved_config = dir + "/checkpoints/config.json";
    }
  } else if (!resume.empty() && !absl::GetFlag(FLAGS_run_dir).empty()) {
    return absl::InvalidArgumentError(
        "--resume continues in the run's own directory; drop --run_dir");
  }
  if (!resume.empty()) {
    resume = UserPath(resume);
    absl::StatusOr<std::string> checkpoint = FindCheckpoint(resume);
    std::error_code ec;
    if (checkpoint.ok()) {
      resume_checkpoint = *checkpoint;
      std::filesystem::path checkpoint_dir =
          std::filesystem::path(resume_checkpoint).parent_path();
      resume_run_dir = checkpoint_dir.parent_path().string();
      if (config_path.empty() && (!resume_auto || model_name.empty())) {
        config_path = (checkpoint_dir / "config.json").string();
      }
    } else if (std::filesystem::is_regular_file(resume + "/config.json", ec)) {
      // A run directory without checkpoints: its pipeline decides whether
      // it can continue (a tune skips its finished trials).
      resume_run_dir = resume;
      if (config_path.empty()) config_path = resume + "/config.json";
    } else {
      return WithContext(checkpoint.status(), "--resume");
    }
  }
  absl::StatusOr<RunConfig> config;
  std::string config_source;
  if (!config_path.empty()) {
    config_source = config_path;
    config = LoadRunConfigFile(UserPath(config_path), overrides);
    // Messages name the file as the user typed it.
    if (!config.ok() && UserPath(config_path) != config_path) {
      std::string message(config.status().message());
      absl::StrReplaceAll({{UserPath(config_path), config_path}}, &message);
      config = absl::Status(config.status().code(), message);
    }
  } else {
    if (model_name.empty()) {
      std::vector<std::string> models = registry.Names(PluginKind::kModel);
      return absl::InvalidArgumentError(absl::StrCat(
          "give --model=NAME (runs its default config) or --config=FILE; "
          "known models: ",
          models.empty() ? "(none loaded)" : absl::StrJoin(models, ", ")));
    }
    absl::StatusOr<const ModelEntry*> entry = registry.FindModel(model_name);
    if (!entry.ok())
      return WithContext(entry.status(), "--model=" + model_name);
    if ((*entry)->default_config_json.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "model '", model_name, "' has no default config; give --config"));
    }
    config_source =
        absl::StrCat("<default config of model '", model_name, "'>");
    config =
        ParseRunConfig((*entry)->default_config_json, config_source, overrides);
  }
  if (!config.ok()) return config.status();

  // Flags win over the file.
  if (!model_name.empty()) config->set_model(model_name);
  if (!absl::GetFlag(FLAGS_optimizer).empty()) {
    config->mutable_optim_config()->set_name(absl::GetFlag(FLAGS_optimizer));
  }
  if (!absl::GetFlag(FLAGS_pipeline).empty()) {
    config->set_pipeline(absl::GetFlag(FLAGS_pipeline));
  }
  if (absl::GetFlag(FLAGS_seed).has_value()) {
    config->set_seed(*absl::GetFlag(FLAGS_seed));
  }
  if (config->pipeline().empty()) config->set_pipeline("train");
  if (!auto_saved_config.empty()) {
    if (absl::Status s = CheckSameConfig(*config, auto_saved_config); !s.ok()) {
      return s;
    }
  }
  // Unknown names and bad plugin sections fail here, before anything is
  // written.
  // A config read without a model (it came from --model) has its training
  // sections checked now; a composite pipeline's config has none.
  absl::StatusOr<const PipelineEntry*> pipeline_lookup =
      registry.FindPipeline(config->pipeline());
  absl::Status config_status = pipeline_lookup.ok() &&
                                       !(*pipeline_lookup)->composite &&
                                       !config->model().empty()
                                   ? ValidateRunConfig(*config)
                                   : absl::OkStatus();
  if (config_status.ok()) config_status = registry.CheckConfig(*config);
  if (absl::Status s = config_status; !s.ok()) {
    // Blame the flag when the name came from one.
    struct FlagField {
      std::string field, flag, value;
    };
    const FlagField flag_fields[] = {
        {"model", "model", absl::GetFlag(FLAGS_model)},
        {"optim_config.name", "optimizer", absl::GetFlag(FLAGS_optimizer)},
        {"pipeline", "pipeline", absl::GetFlag(FLAGS_pipeline)}};
    for (const FlagField& f : flag_fields) {
      if (!f.value.empty() && absl::StartsWith(s.message(), f.field + ": ")) {
        return absl::Status(
            s.code(), absl::StrCat("--", f.flag, "=", f.value, ": ",
                                   s.message().substr(f.field.size() + 2)));
      }
    }
    return AttributeConfigError(s, config_source, overrides);
  }
  const PipelineEntry* pipeline_entry =
      *registry.FindPipeline(config->pipeline());

  if (absl::GetFlag(FLAGS_print_config)) {
    std::cout << RunConfigToJson(*config);
    return absl::OkStatus();
  }

  absl::StatusOr<DistributedConfig> distributed = DistributedFromEnvironment();
  if (!distributed.ok()) return distributed.status();
  const int nproc = absl::GetFlag(FLAGS_nproc);
  if (nproc < 1) return absl::InvalidArgumentError("--nproc must be >= 1");
  if (nproc > 1 && distributed->enabled()) {
    return absl::InvalidArgumentError(
        "--nproc starts the ranks itself; unset WORLD_SIZE (or drop --nproc "
        "and start every rank yourself)");
  }
  // Ranks other than 0 write nothing and log only warnings and errors.
  const bool writer = !distributed->enabled() || distributed->rank == 0;
  if (!writer) FLAGS_minloglevel = 1;
  absl::StatusOr<std::string> run_dir = resume_run_dir;
  if (resume_run_dir.empty()) {
    const std::string explicit_dir = UserPath(absl::GetFlag(FLAGS_run_dir));
    if (!writer) {
      run_dir = explicit_dir;
    } else if (resume_auto) {
      run_dir = RestartRunDir(explicit_dir);
    } else {
      run_dir =
          CreateRunDir(explicit_dir, UserPath(absl::GetFlag(FLAGS_runs_root)),
                       config->run_name());
    }
  }
  if (!run_dir.ok()) return run_dir.status();
  if (run_dir->empty()) {
    return absl::InvalidArgumentError(
        "a rank other than 0 needs --run_dir (the same as rank 0's)");
  }
  if (distributed->enabled()) {
    LOG(INFO) << absl::StrFormat(
        "rank %d of %d (local rank %d of %d on node %d)%s", distributed->rank,
        distributed->world_size, distributed->local_rank,
        distributed->local_world_size, distributed->group_rank,
        distributed->restart_count > 0
            ? absl::StrFormat("; torchrun restart %d: %s",
                              distributed->restart_count,
                              resume_run_dir.empty()
                                  ? "no checkpoint yet, starting over"
                                  : "continuing from " + resume_checkpoint)
            : "");
  }
  if (!resume_run_dir.empty() && !pipeline_entry->composite) {
    if (std::optional<std::string> done = FinishedRun(*run_dir, *config)) {
      // Nothing to continue: say so and touch nothing (no log line, no
      // metrics.json rewritten with an empty last loss).
      std::cout << *done << std::endl;
      return absl::OkStatus();
    }
  }
  if (nproc > 1) {
    // The ranks decide --resume=auto again, and find the same answer.
    return LaunchRanks(argc, argv, nproc,
                       resume_run_dir.empty() || resume_auto ? *run_dir : "");
  }
  // Ranks on one machine share its cores.
  const ThreadChoice thread_choice =
      ChooseThreads(absl::GetFlag(FLAGS_threads),
                    distributed->enabled() ? distributed->local_world_size : 1);
  const int threads = thread_choice.threads;
  SetThreads(threads, thread_choice.blas_threads);
  std::unique_ptr<RunDirLock> lock;
  std::unique_ptr<RunLogFile> log;
  if (writer) {
    absl::StatusOr<std::unique_ptr<RunDirLock>> taken =
        RunDirLock::Take(*run_dir);
    if (!taken.ok()) return taken.status();
    lock = *std::move(taken);
    absl::StatusOr<std::unique_ptr<RunLogFile>> opened =
        RunLogFile::Open(*run_dir + "/log.txt");
    if (!opened.ok()) return opened.status();
    log = *std::move(opened);
    if (absl::Status s = WriteFileAtomically(*run_dir + "/config.json",
                                             RunConfigToJson(*config));
        !s.ok()) {
      return s;
    }
  }
  LOG(INFO) << (resume_run_dir.empty() ? "run directory: "
                                       : "resuming in run directory: ")
            << *run_dir;
  LOG(INFO) << "threads: " << threads << " (" << thread_choice.why << "; "
            << DescribeThreads() << ")";
  if (pipeline_entry->composite) {
    // Its members name their own models and optimizers.
    LOG(INFO) << "pipeline=" << config->pipeline() << " threads=" << threads
              << " config=" << config_source;
  } else {
    LOG(INFO) << "model=" << config->model()
              << " optimizer=" << config->optim_config().name()
              << " pipeline=" << config->pipeline()
              << " seed=" << config->seed() << " threads=" << threads
              << " config=" << config_source;
  }

  PipelineContext context;
  context.config = &*config;
  context.config_source = config_source;
  context.run_dir = *run_dir;
  context.registry = &registry;
  context.num_threads = threads;
  context.resuming = !resume_run_dir.empty();
  context.resume_from = resume_checkpoint;
  absl::StatusOr<std::unique_ptr<Pipeline>> pipeline =
      pipeline_entry->factory(context);
  if (!pipeline.ok()) return pipeline.status();
  absl::Status status = (*pipeline)->Run();
  if (status.ok()) {
    LOG(INFO) << "done; outputs in " << *run_dir;
  } else {
    // main prints the error to the console; keep it in the run's log too.
    if (log != nullptr) log->Append(absl::StrCat("error: ", status.message()));
  }
  return status;
}

}  // namespace
}  // namespace ouroboros

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(ouroboros::kUsage);
  google::InitGoogleLogging(argv[0]);
  ouroboros::InstallConsoleLog();
  ouroboros::InstallStopSignalHandlers();
  absl::Status status = ouroboros::Run(argc, argv);
  if (absl::IsCancelled(status)) {
    // Not an error: the run did what a stop signal asks.
    std::cerr << status.message() << std::endl;
  } else if (!status.ok()) {
    std::cerr << "error: " << status.message() << std::endl;
  }
  return ouroboros::ExitCodeFor(status);
}
