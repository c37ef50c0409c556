// Starting a run from what main's flags ask: what --resume continues, the
// config, the run directory, then the pipeline in this process.
//
//   StartOptions options;  // from the flags
//   ASSIGN_OR_RETURN(ResumePlan plan, PlanResume(options));
//   ASSIGN_OR_RETURN(ResolvedRunSpec spec,
//                    ResolveStartConfig(options, plan, registry));
//   return StartRun(options, plan, spec, registry);
#ifndef OUROBOROS_CLI_RUN_START_H_
#define OUROBOROS_CLI_RUN_START_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "ouroboros/config/config.pb.h"
#include "ouroboros/runs/run_spec.h"

namespace ouroboros {

class PluginRegistry;
struct DistributedConfig;

// main's flags, as given (paths relative to where the command was typed:
// UserPath is applied here).
struct StartOptions {
  // Override the config's names; empty: the config's.
  std::string model;
  std::string optimizer;
  std::string pipeline;
  std::string config_path;             // --config; empty: --model's default
  std::vector<std::string> overrides;  // --set, in order
  std::optional<uint64_t> seed;
  std::string run_dir;    // --run_dir
  std::string resume;     // "", "auto", or a run directory or checkpoint
  std::string runs_root;  // where new run directories go
  int threads = 0;        // 0: the start-up probe chooses
  bool keep_freed_memory = true;
  int nproc = 1;  // > 1: start this many ranks here (rank_launcher.h)
  // main's arguments (argv[1..]), which the ranks of --nproc run again.
  std::vector<std::string> command_line;
};

// What --resume (or --resume=auto) continues, and which config file to read.
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

absl::StatusOr<ResumePlan> PlanResume(const StartOptions& options);

// The config (the plan's file, or the model's embedded default), the --set
// overrides, then the name and seed flags, checked against the loaded
// plugins and with every plugin section's defaults filled in. An error
// names the flag, or the file and field (AttributeConfigError).
absl::StatusOr<ResolvedRunSpec> ResolveStartConfig(
    const StartOptions& options, const ResumePlan& plan,
    const PluginRegistry& registry);

// --resume=auto found `saved_path`'s checkpoint: it must be of `config`,
// or the restarted job would silently train something else. The message
// names the first line that differs.
absl::Status CheckSameConfig(const RunConfig& config,
                             const std::string& saved_path,
                             const PluginRegistry& registry);

// The run directory: the one resumed, a restarted one (--resume=auto
// without a checkpoint: may hold only what an earlier attempt wrote before
// its first checkpoint) or a new one. A rank other than 0 (not `writer`)
// creates nothing and must be told rank 0's directory.
absl::StatusOr<std::string> PrepareRunDir(const StartOptions& options,
                                          const ResumePlan& plan,
                                          const RunConfig& config, bool writer);

// A resumed run whose metrics.json says it reached the config's end (its
// epochs, run_config.max_steps, or early stopping with no more patience
// asked): the line to print instead of running.
std::optional<std::string> FinishedRun(const std::string& run_dir,
                                       const RunConfig& config);

// The log line of a rank of a distributed job (and of its torchrun
// restart).
std::string DescribeRank(const DistributedConfig& distributed,
                         const ResumePlan& plan);

// The run once its config is resolved: its run directory, then the
// pipeline in this process (RunPipeline) or, with options.nproc > 1, the
// ranks that run it. A resumed run that is already finished (FinishedRun)
// only says so on stdout.
absl::Status StartRun(const StartOptions& options, const ResumePlan& plan,
                      const ResolvedRunSpec& spec,
                      const PluginRegistry& registry);

// In this process: the threads, malloc's settings, the run directory's
// lock, log.txt and config.json (`writer` only), then the pipeline. Its
// error is also appended to log.txt.
absl::Status RunPipeline(const StartOptions& options,
                         const ResolvedRunSpec& spec, const ResumePlan& plan,
                         const std::string& run_dir,
                         const DistributedConfig& distributed, bool writer,
                         const PluginRegistry& registry);

}  // namespace ouroboros

#endif  // OUROBOROS_CLI_RUN_START_H_
