#include "ouroboros/cli/run_start.h"

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "glog/logging.h"
#include "ouroboros/api/plugin_api.h"
#include "ouroboros/api/registry.h"
#include "ouroboros/base/errors.h"
#include "ouroboros/base/files.h"
#include "ouroboros/base/status_macros.h"
#include "ouroboros/base/threads.h"
#include "ouroboros/cli/malloc_settings.h"
#include "ouroboros/cli/rank_launcher.h"
#include "ouroboros/config/config.h"
#include "ouroboros/distributed/child_process.h"
#include "ouroboros/distributed/distributed.h"
#include "ouroboros/runs/checkpoint.h"
#include "ouroboros/runs/run_dir.h"
#include "ouroboros/runs/run_layout.h"
#include "ouroboros/runs/run_metrics.h"

namespace ouroboros {
namespace {

// --resume=auto: continue `dir`'s checkpoint, or start in `dir`.
absl::Status PlanAutomaticResume(const StartOptions& options, ResumePlan* plan,
                                 std::string* resume) {
  const std::string dir = UserPath(options.run_dir);
  if (dir.empty()) {
    return absl::InvalidArgumentError(
        "--resume=auto needs --run_dir=DIR: the directory the run continues "
        "in, or starts in when it holds no checkpoint yet");
  }
  std::error_code ec;
  if (FindCheckpoint(dir).ok()) {
    *resume = dir;
    plan->saved_config = CheckpointFile(dir, kConfigFile);
  } else if (std::filesystem::is_regular_file(RunFile(dir, kConfigFile), ec)) {
    plan->earlier_attempt = true;
  }
  return absl::OkStatus();
}

// A config error caused by a name given as a flag names the flag.
absl::Status BlameFlag(const absl::Status& error, const StartOptions& options) {
  struct FlagField {
    std::string field, flag, value;
  };
  const FlagField flag_fields[] = {
      {"model", "model", options.model},
      {"optim_config.name", "optimizer", options.optimizer},
      {"pipeline", "pipeline", options.pipeline}};
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

// The flags win over the file.
void ApplyFlags(const StartOptions& options, RunConfig* config) {
  if (!options.model.empty()) config->set_model(options.model);
  if (!options.optimizer.empty()) {
    config->mutable_optim_config()->set_name(options.optimizer);
  }
  if (!options.pipeline.empty()) config->set_pipeline(options.pipeline);
  if (options.seed.has_value()) config->set_seed(*options.seed);
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

void LogRunStart(const ResolvedRunSpec& spec, const ResumePlan& plan,
                 const std::string& run_dir, const ThreadChoice& threads,
                 const std::string& malloc_settings, bool composite) {
  const RunConfig& config = spec.config;
  LOG(INFO) << (plan.run_dir.empty() ? "run directory: "
                                     : "resuming in run directory: ")
            << run_dir;
  LOG(INFO) << "threads: " << threads.threads << " (" << threads.why << "; "
            << DescribeThreads() << ")";
  LOG(INFO) << "malloc: " << malloc_settings;
  if (composite) {
    // Its members name their own models and optimizers.
    LOG(INFO) << "pipeline=" << config.pipeline()
              << " threads=" << threads.threads << " config=" << spec.source;
  } else {
    LOG(INFO) << "model=" << config.model()
              << " optimizer=" << config.optim_config().name()
              << " pipeline=" << config.pipeline() << " seed=" << config.seed()
              << " threads=" << threads.threads << " config=" << spec.source;
  }
}

}  // namespace

absl::StatusOr<ResumePlan> PlanResume(const StartOptions& options) {
  ResumePlan plan;
  plan.config_path = options.config_path;
  std::string resume = options.resume;
  plan.automatic = resume == "auto";
  if (plan.automatic) {
    resume.clear();
    RETURN_IF_ERROR(PlanAutomaticResume(options, &plan, &resume));
  } else if (!resume.empty() && !options.run_dir.empty()) {
    return absl::InvalidArgumentError(
        "--resume continues in the run's own directory; drop --run_dir");
  }
  if (resume.empty()) return plan;
  resume = UserPath(resume);
  absl::StatusOr<std::string> checkpoint = FindCheckpoint(resume);
  std::error_code ec;
  if (checkpoint.ok()) {
    plan.checkpoint = *checkpoint;
    const std::filesystem::path checkpoint_dir =
        std::filesystem::path(plan.checkpoint).parent_path();
    plan.run_dir = checkpoint_dir.parent_path().string();
    // --resume=auto --model=M (no --config): M's default config, which the
    // saved one must match.
    if (plan.config_path.empty() &&
        (!plan.automatic || options.model.empty())) {
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

absl::StatusOr<ResolvedRunSpec> ResolveStartConfig(
    const StartOptions& options, const ResumePlan& plan,
    const PluginRegistry& registry) {
  RunSpecSource source;
  source.config_file = plan.config_path;
  if (source.config_file.empty()) source.model = options.model;
  ASSIGN_OR_RETURN(ResolvedRunSpec spec,
                   ResolveRunSpec(source, options.overrides, &registry));
  ApplyFlags(options, &spec.config);
  // Checked, then every plugin section with its defaults, as config.json
  // and --print_config show it (the validators say what is wrong first, in
  // the plugins' own words).
  absl::Status status = ValidateRunSpec(spec.config, registry);
  if (status.ok()) status = registry.FillDefaults(&spec.config);
  if (status.ok() && !plan.saved_config.empty()) {
    RETURN_IF_ERROR(CheckSameConfig(spec.config, plan.saved_config, registry));
  }
  if (!status.ok()) {
    absl::Status blamed = BlameFlag(status, options);
    return blamed.message() != status.message()
               ? blamed
               : AttributeConfigError(status, spec.source, options.overrides);
  }
  return spec;
}

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

absl::StatusOr<std::string> PrepareRunDir(const StartOptions& options,
                                          const ResumePlan& plan,
                                          const RunConfig& config,
                                          bool writer) {
  if (!plan.run_dir.empty()) return plan.run_dir;
  const std::string explicit_dir = UserPath(options.run_dir);
  absl::StatusOr<std::string> run_dir;
  if (!writer) {
    run_dir = explicit_dir;
  } else if (plan.automatic) {
    run_dir = RestartRunDir(explicit_dir);
  } else {
    run_dir = CreateRunDir(explicit_dir, UserPath(options.runs_root),
                           config.run_name());
  }
  if (run_dir.ok() && run_dir->empty()) {
    return absl::InvalidArgumentError(
        "a rank other than 0 needs --run_dir (the same as rank 0's)");
  }
  return run_dir;
}

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

std::string DescribeRank(const DistributedConfig& distributed,
                         const ResumePlan& plan) {
  return absl::StrFormat(
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

absl::Status RunPipeline(const StartOptions& options,
                         const ResolvedRunSpec& spec, const ResumePlan& plan,
                         const std::string& run_dir,
                         const DistributedConfig& distributed, bool writer,
                         const PluginRegistry& registry) {
  const RunConfig& config = spec.config;
  ASSIGN_OR_RETURN(const PipelineEntry* pipeline_entry,
                   registry.FindPipeline(config.pipeline()));
  // Ranks on one machine share its cores.
  const ThreadChoice threads =
      ChooseThreads(options.threads,
                    distributed.enabled() ? distributed.local_world_size : 1);
  SetThreads(threads.threads, threads.blas_threads);
  const std::string malloc_settings =
      KeepFreedMemory(options.keep_freed_memory);
  std::unique_ptr<RunDirLock> lock;
  std::unique_ptr<RunLogFile> log;
  if (writer) {
    ASSIGN_OR_RETURN(lock, RunDirLock::Take(run_dir));
    ASSIGN_OR_RETURN(log, RunLogFile::Open(RunFile(run_dir, kLogFile)));
    RETURN_IF_ERROR(WriteFileAtomically(RunFile(run_dir, kConfigFile),
                                        RunConfigToJson(config)));
  }
  LogRunStart(spec, plan, run_dir, threads, malloc_settings,
              pipeline_entry->composite);
  PipelineContext context;
  context.config = &config;
  context.config_source = spec.source;
  context.run_dir = run_dir;
  context.registry = &registry;
  // The wider of the two pools: a child run's --threads=N sets both, so
  // this is what a child may use (PlanChildRuns, child_run.h).
  context.num_threads = std::max(threads.threads, threads.blas_threads);
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

absl::Status StartRun(const StartOptions& options, const ResumePlan& plan,
                      const ResolvedRunSpec& spec,
                      const PluginRegistry& registry) {
  ASSIGN_OR_RETURN(DistributedConfig distributed, DistributedFromEnvironment());
  const int nproc = options.nproc;
  if (nproc > 1 && distributed.enabled()) {
    return absl::InvalidArgumentError(
        "--nproc starts the ranks itself; unset WORLD_SIZE (or drop --nproc "
        "and start every rank yourself)");
  }
  // Ranks other than 0 write nothing and log only warnings and errors.
  const bool writer = !distributed.enabled() || distributed.rank == 0;
  if (!writer) FLAGS_minloglevel = 1;
  ASSIGN_OR_RETURN(std::string run_dir,
                   PrepareRunDir(options, plan, spec.config, writer));
  if (distributed.enabled()) LOG(INFO) << DescribeRank(distributed, plan);
  ASSIGN_OR_RETURN(const PipelineEntry* pipeline,
                   registry.FindPipeline(spec.config.pipeline()));
  if (!plan.run_dir.empty() && !pipeline->composite) {
    if (std::optional<std::string> done = FinishedRun(run_dir, spec.config)) {
      // Nothing to continue: say so and touch nothing (no log line, no
      // metrics.json rewritten with an empty last loss).
      std::cout << *done << std::endl;
      return absl::OkStatus();
    }
  }
  if (nproc > 1) {
    // The ranks decide --resume=auto again, and find the same answer.
    const std::string rank_run_dir =
        plan.run_dir.empty() || plan.automatic ? run_dir : "";
    ASSIGN_OR_RETURN(std::string self, SelfExecutable());
    return LaunchRanks(RankCommand(self, options.command_line, rank_run_dir),
                       nproc, rank_run_dir);
  }
  return RunPipeline(options, spec, plan, run_dir, distributed, writer,
                     registry);
}

}  // namespace ouroboros
