// ouroboros main: loads the plugins, resolves the config and runs a pipeline.
#include <malloc.h>
#include <signal.h>
#include <stdlib.h>
#include <torch/version.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
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
#include "ouroboros/plugin_api.h"
#include "ouroboros/plugin_loader.h"
#include "ouroboros/registry.h"
#include "ouroboros/run_dir.h"
#include "ouroboros/run_layout.h"
#include "ouroboros/run_metrics.h"
#include "ouroboros/run_spec.h"
#include "ouroboros/status_macros.h"
#include "ouroboros/stop_signal.h"
#include "ouroboros/threads.h"
#include "ouroboros/version.h"
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

// glibc's malloc returns memory to the system when the top of its heap
// grows past a threshold it adjusts as it goes, and serves large blocks
// from fresh mmaps. A training step frees and allocates the same
// activations every time, and in long runs every step faulted tens of
// thousands of pages in again: the SRWM default run took 609 s instead of
// 77 s with these settings (29.4M page faults against 268k; the same
// results to the last bit; tools/bench_malloc). Fixing the thresholds
// keeps freed memory for reuse, at the cost of holding on to the run's
// peak heap until it ends. Returns what is in force, for the log.
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
    RETURN_IF_ERROR(ExpandFlagfiles(lines, depth + 1, out));
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
  RETURN_IF_ERROR(ExpandFlagfiles(given, 0, expanded));
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
                             const std::string& saved_path,
                             const PluginRegistry& registry) {
  absl::StatusOr<RunConfig> saved = LoadRunConfigFile(saved_path, {});
  // A config.json written before the defaults were filled in compares by
  // its values in force.
  if (saved.ok()) {
    if (absl::Status s = registry.FillDefaults(&*saved); !s.ok()) saved = s;
  }
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
  if (std::filesystem::exists(RunFile(dir, kConfigFile), ec)) return dir;
  // An attempt stopped before it wrote config.json leaves only its lock and
  // the start of its log.
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name != kLockFile && name != kLogFile) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--run_dir=", dir,
          ": not empty and not a run directory (no config.json); refusing "
          "to start a run in it"));
    }
  }
  return dir;
}

// A resumed run whose metrics.json says it reached the config's end (its
// epochs, or run_config.max_steps): the line to print instead of running.
std::optional<std::string> FinishedRun(const std::string& run_dir,
                                       const RunConfig& config) {
  absl::StatusOr<RunMetrics> metrics = ReadRunMetrics(run_dir);
  if (!metrics.ok()) return std::nullopt;
  const int64_t epochs = metrics->epochs;
  const int64_t steps = metrics->steps;
  const int64_t max_steps = config.run_config().max_steps();
  // Stopped early, and the config asks for no more patience than it had.
  const bool stopped_early =
      metrics->early_stopping.has_value() && metrics->early_stopping->stopped &&
      config.score_config().patience() > 0 &&
      config.score_config().patience() <= metrics->early_stopping->patience;
  if (!stopped_early && epochs < config.run_config().epochs() &&
      (max_steps <= 0 || steps < max_steps)) {
    return std::nullopt;
  }
  return absl::StrFormat(
      "%s: the run is finished (%d epochs, %d steps; metrics.json); nothing "
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
  std::cout << absl::StrFormat("%-11s  %-*s  %s\n", "KIND", name_width, "NAME",
                               "DESCRIPTION  [FILE]");
  for (const auto& row : rows) {
    std::cout << absl::StrFormat("%-11s  %-*s  %s  [%s]\n",
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

// Answers --help, --helpshort, --helpfull and --version (absl would exit 1
// for them; asking for help is not an error). True when it answered one.
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
          absl::flags_internal::HelpFormat::kHumanReadable, kUsage);
      std::cout << std::endl;
      return true;
    }
    if (arg == "--version" || arg == "-version") {
      std::cout << absl::StrFormat(
          "ouroboros %s (commit %s, plugin ABI %d), LibTorch %s, Abseil "
          "LTS %d, Protobuf %s, BLAS: %s; compiled with -O2%s\n",
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
      return true;
    }
  }
  return false;
}

// Stage 1: the flags, checked before absl parses them (a bad one exits 2).
// Returns the --set overrides, in order.
absl::StatusOr<std::vector<std::string>> ParseFlags(int argc, char** argv) {
  std::vector<char*> absl_args;
  std::vector<std::string> overrides;
  RETURN_IF_ERROR(PreParseFlags(argc, argv, &absl_args, &overrides));
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
  if (absl::GetFlag(FLAGS_nproc) < 1) {
    return absl::InvalidArgumentError("--nproc must be >= 1");
  }
  return overrides;
}

// Stage 2: every plugin on the search path (--plugin_dir,
// $OUROBOROS_PLUGIN_PATH, the plugins built with main).
std::vector<PluginLoadReport> LoadPlugins(PluginRegistry& registry,
                                          const char* argv0) {
  PluginLoader loader(&registry);
  const char* env_path = getenv("OUROBOROS_PLUGIN_PATH");
  std::vector<std::string> flag_dirs;
  for (const std::string& dir : absl::GetFlag(FLAGS_plugin_dir)) {
    flag_dirs.push_back(UserPath(dir));
  }
  return loader.LoadDirectories(PluginSearchPath(
      flag_dirs, env_path != nullptr ? env_path : "", DefaultPluginDir(argv0)));
}

// Stage 3: what --resume (or --resume=auto) continues, and which config
// file to read.
struct ResumePlan {
  std::string checkpoint;   // the checkpoint to continue from, or empty
  std::string run_dir;      // the run directory continued; empty: a new run
  std::string config_path;  // the config file to read, or empty (--model's)
  bool automatic = false;   // --resume=auto
  // --resume=auto found a checkpoint: the config this command must match.
  std::string saved_config;
  // --resume=auto found no checkpoint but an earlier attempt's config.json:
  // a composite pipeline (a tune, a parallel job) continues from its own
  // records there; a training run starts afresh.
  bool earlier_attempt = false;
};

absl::StatusOr<ResumePlan> PlanResume() {
  ResumePlan plan;
  plan.config_path = absl::GetFlag(FLAGS_config);
  const bool model_flag = !absl::GetFlag(FLAGS_model).empty();
  std::string resume = absl::GetFlag(FLAGS_resume);
  plan.automatic = resume == "auto";
  if (plan.automatic) {
    const std::string dir = UserPath(absl::GetFlag(FLAGS_run_dir));
    if (dir.empty()) {
      return absl::InvalidArgumentError(
          "--resume=auto needs --run_dir=DIR: the directory the run continues "
          "in, or starts in when it holds no checkpoint yet");
    }
    resume.clear();
    std::error_code ec;
    if (FindCheckpoint(dir).ok()) {
      resume = dir;
      plan.saved_config = CheckpointFile(dir, kConfigFile);
    } else if (std::filesystem::is_regular_file(RunFile(dir, kConfigFile),
                                                ec)) {
      plan.earlier_attempt = true;
    }
  } else if (!resume.empty() && !absl::GetFlag(FLAGS_run_dir).empty()) {
    return absl::InvalidArgumentError(
        "--resume continues in the run's own directory; drop --run_dir");
  }
  if (resume.empty()) return plan;
  resume = UserPath(resume);
  absl::StatusOr<std::string> checkpoint = FindCheckpoint(resume);
  std::error_code ec;
  if (checkpoint.ok()) {
    plan.checkpoint = *checkpoint;
    std::filesystem::path checkpoint_dir =
        std::filesystem::path(plan.checkpoint).parent_path();
    plan.run_dir = checkpoint_dir.parent_path().string();
    if (plan.config_path.empty() && (!plan.automatic || !model_flag)) {
      plan.config_path = (checkpoint_dir / kConfigFile).string();
    }
  } else if (std::filesystem::is_regular_file(RunFile(resume, kConfigFile),
                                              ec)) {
    // A run directory without checkpoints: its pipeline decides whether
    // it can continue (a tune skips its finished trials).
    plan.run_dir = resume;
    if (plan.config_path.empty()) {
      plan.config_path = RunFile(resume, kConfigFile);
    }
  } else {
    return WithContext(checkpoint.status(), "--resume");
  }
  return plan;
}

// A config error caused by a name given as a flag names the flag.
absl::Status BlameFlag(const absl::Status& error) {
  struct FlagField {
    std::string field, flag, value;
  };
  const FlagField flag_fields[] = {
      {"model", "model", absl::GetFlag(FLAGS_model)},
      {"optim_config.name", "optimizer", absl::GetFlag(FLAGS_optimizer)},
      {"pipeline", "pipeline", absl::GetFlag(FLAGS_pipeline)}};
  for (const FlagField& f : flag_fields) {
    if (!f.value.empty() && absl::StartsWith(error.message(), f.field + ": ")) {
      return absl::Status(
          error.code(),
          absl::StrCat("--", f.flag, "=", f.value, ": ",
                       error.message().substr(f.field.size() + 2)));
    }
  }
  return error;
}

// Stage 4: the config (the file, or the model's embedded default), the
// --set overrides, then the flags, checked against the loaded plugins before
// anything is written.
absl::StatusOr<ResolvedRunSpec> ResolveConfig(
    const ResumePlan& plan, const std::vector<std::string>& overrides,
    const PluginRegistry& registry) {
  RunSpecSource source;
  source.config_file = plan.config_path;
  if (source.config_file.empty()) source.model = absl::GetFlag(FLAGS_model);
  ASSIGN_OR_RETURN(ResolvedRunSpec spec,
                   ResolveRunSpec(source, overrides, &registry));
  RunConfig& config = spec.config;
  // Flags win over the file.
  if (!absl::GetFlag(FLAGS_model).empty()) {
    config.set_model(absl::GetFlag(FLAGS_model));
  }
  if (!absl::GetFlag(FLAGS_optimizer).empty()) {
    config.mutable_optim_config()->set_name(absl::GetFlag(FLAGS_optimizer));
  }
  if (!absl::GetFlag(FLAGS_pipeline).empty()) {
    config.set_pipeline(absl::GetFlag(FLAGS_pipeline));
  }
  if (absl::GetFlag(FLAGS_seed).has_value()) {
    config.set_seed(*absl::GetFlag(FLAGS_seed));
  }
  // Checked, then every plugin section with its defaults, as config.json
  // and --print_config show it (the validators say what is wrong first, in
  // the plugins' own words).
  absl::Status status = ValidateRunSpec(config, registry);
  if (status.ok()) status = registry.FillDefaults(&config);
  if (status.ok() && !plan.saved_config.empty()) {
    RETURN_IF_ERROR(CheckSameConfig(config, plan.saved_config, registry));
  }
  if (absl::Status s = status; !s.ok()) {
    absl::Status blamed = BlameFlag(s);
    return blamed.message() != s.message()
               ? blamed
               : AttributeConfigError(s, spec.source, overrides);
  }
  return spec;
}

// Stage 5: the run directory: the one resumed, a restarted one
// (--resume=auto without a checkpoint) or a new one. A rank other than 0
// writes nothing and is told rank 0's directory.
absl::StatusOr<std::string> PrepareRunDir(const ResumePlan& plan,
                                          const RunConfig& config,
                                          bool writer) {
  if (!plan.run_dir.empty()) return plan.run_dir;
  const std::string explicit_dir = UserPath(absl::GetFlag(FLAGS_run_dir));
  absl::StatusOr<std::string> run_dir;
  if (!writer) {
    run_dir = explicit_dir;
  } else if (plan.automatic) {
    run_dir = RestartRunDir(explicit_dir);
  } else {
    run_dir =
        CreateRunDir(explicit_dir, UserPath(absl::GetFlag(FLAGS_runs_root)),
                     config.run_name());
  }
  if (run_dir.ok() && run_dir->empty()) {
    return absl::InvalidArgumentError(
        "a rank other than 0 needs --run_dir (the same as rank 0's)");
  }
  return run_dir;
}

// Stage 6, in this process: threads, the run directory's lock, log.txt and
// config.json, then the pipeline.
absl::Status RunPipeline(const ResolvedRunSpec& spec, const ResumePlan& plan,
                         const std::string& run_dir,
                         const DistributedConfig& distributed, bool writer,
                         const PluginRegistry& registry) {
  const RunConfig& config = spec.config;
  const PipelineEntry* pipeline_entry =
      *registry.FindPipeline(config.pipeline());
  // Ranks on one machine share its cores.
  const ThreadChoice thread_choice =
      ChooseThreads(absl::GetFlag(FLAGS_threads),
                    distributed.enabled() ? distributed.local_world_size : 1);
  const int threads = thread_choice.threads;
  SetThreads(threads, thread_choice.blas_threads);
  const std::string malloc_settings =
      KeepFreedMemory(absl::GetFlag(FLAGS_keep_freed_memory));
  std::unique_ptr<RunDirLock> lock;
  std::unique_ptr<RunLogFile> log;
  if (writer) {
    ASSIGN_OR_RETURN(lock, RunDirLock::Take(run_dir));
    ASSIGN_OR_RETURN(log, RunLogFile::Open(RunFile(run_dir, kLogFile)));
    RETURN_IF_ERROR(WriteFileAtomically(RunFile(run_dir, kConfigFile),
                                        RunConfigToJson(config)));
  }
  LOG(INFO) << (plan.run_dir.empty() ? "run directory: "
                                     : "resuming in run directory: ")
            << run_dir;
  LOG(INFO) << "threads: " << threads << " (" << thread_choice.why << "; "
            << DescribeThreads() << ")";
  LOG(INFO) << "malloc: " << malloc_settings;
  if (pipeline_entry->composite) {
    // Its members name their own models and optimizers.
    LOG(INFO) << "pipeline=" << config.pipeline() << " threads=" << threads
              << " config=" << spec.source;
  } else {
    LOG(INFO) << "model=" << config.model()
              << " optimizer=" << config.optim_config().name()
              << " pipeline=" << config.pipeline() << " seed=" << config.seed()
              << " threads=" << threads << " config=" << spec.source;
  }

  PipelineContext context;
  context.config = &config;
  context.config_source = spec.source;
  context.run_dir = run_dir;
  context.registry = &registry;
  context.num_threads = threads;
  context.resuming = !plan.run_dir.empty() ||
                     (plan.earlier_attempt && pipeline_entry->composite);
  context.resume_from = plan.checkpoint;
  absl::StatusOr<std::unique_ptr<Pipeline>> pipeline =
      pipeline_entry->factory(context);
  absl::Status status = pipeline.ok() ? (*pipeline)->Run() : pipeline.status();
  if (status.ok()) {
    LOG(INFO) << "done; outputs in " << run_dir;
  } else if (log != nullptr) {
    // main prints it to the console; keep it in the run's log too. A stop
    // signal is not an error: the run did what it asks (and is resumable).
    log->Append(absl::IsCancelled(status)
                    ? std::string(status.message())
                    : absl::StrCat("error: ", status.message()));
  }
  return status;
}

absl::Status Run(int argc, char** argv) {
  if (AnswerHelpOrVersion(argc, argv)) return absl::OkStatus();
  ASSIGN_OR_RETURN(std::vector<std::string> overrides, ParseFlags(argc, argv));

  PluginRegistry& registry = PluginRegistry::Global();
  std::vector<PluginLoadReport> reports = LoadPlugins(registry, argv[0]);
  if (absl::GetFlag(FLAGS_list_plugins)) {
    PrintPluginList(registry, reports);
    return absl::OkStatus();
  }
  for (const auto& report : reports) {
    if (!report.status.ok()) LOG(WARNING) << report.status.message();
  }

  ASSIGN_OR_RETURN(ResumePlan plan, PlanResume());
  ASSIGN_OR_RETURN(ResolvedRunSpec spec,
                   ResolveConfig(plan, overrides, registry));
  if (absl::GetFlag(FLAGS_print_config)) {
    std::cout << RunConfigToJson(spec.config);
    return absl::OkStatus();
  }

  ASSIGN_OR_RETURN(DistributedConfig distributed, DistributedFromEnvironment());
  const int nproc = absl::GetFlag(FLAGS_nproc);
  if (nproc > 1 && distributed.enabled()) {
    return absl::InvalidArgumentError(
        "--nproc starts the ranks itself; unset WORLD_SIZE (or drop --nproc "
        "and start every rank yourself)");
  }
  // Ranks other than 0 write nothing and log only warnings and errors.
  const bool writer = !distributed.enabled() || distributed.rank == 0;
  if (!writer) FLAGS_minloglevel = 1;
  ASSIGN_OR_RETURN(std::string run_dir,
                   PrepareRunDir(plan, spec.config, writer));
  if (distributed.enabled()) {
    LOG(INFO) << absl::StrFormat(
        "rank %d of %d (local rank %d of %d on node %d)%s", distributed.rank,
        distributed.world_size, distributed.local_rank,
        distributed.local_world_size, distributed.group_rank,
        distributed.restart_count > 0
            ? absl::StrFormat(
                  "; torchrun restart %d: %s", distributed.restart_count,
                  plan.run_dir.empty() ? "no checkpoint yet, starting over"
                                       : "continuing from " + plan.checkpoint)
            : "");
  }
  const bool composite =
      (*registry.FindPipeline(spec.config.pipeline()))->composite;
  if (!plan.run_dir.empty() && !composite) {
    if (std::optional<std::string> done = FinishedRun(run_dir, spec.config)) {
      // Nothing to continue: say so and touch nothing (no log line, no
      // metrics.json rewritten with an empty last loss).
      std::cout << *done << std::endl;
      return absl::OkStatus();
    }
  }
  if (nproc > 1) {
    // The ranks decide --resume=auto again, and find the same answer.
    return LaunchRanks(argc, argv, nproc,
                       plan.run_dir.empty() || plan.automatic ? run_dir : "");
  }
  return RunPipeline(spec, plan, run_dir, distributed, writer, registry);
}

}  // namespace
}  // namespace ouroboros

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(ouroboros::kUsage);
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
