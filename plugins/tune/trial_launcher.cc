#include "plugins/tune/trial_launcher.h"

#include <algorithm>
#include <filesystem>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "glog/logging.h"
#include "ouroboros/api/registry.h"
#include "ouroboros/base/errors.h"
#include "ouroboros/base/files.h"
#include "ouroboros/base/status_macros.h"
#include "ouroboros/base/stop_signal.h"
#include "ouroboros/runs/checkpoint.h"
#include "ouroboros/runs/run_layout.h"

namespace ouroboros::tune {
namespace {

namespace fs = std::filesystem;

// In this process; continuing from `checkpoint` when it is not empty.
absl::Status RunFinalHere(const PipelineContext& context,
                          const RunConfig& best_config,
                          const std::string& final_dir,
                          const std::string& checkpoint) {
  ASSIGN_OR_RETURN(const PipelineEntry* entry,
                   context.registry->FindPipeline(best_config.pipeline()));
  PipelineContext final_context = context;
  final_context.config = &best_config;
  final_context.config_source = context.run_dir + "/best_config.json";
  final_context.run_dir = final_dir;
  final_context.resuming = !checkpoint.empty();
  final_context.resume_from = checkpoint;
  LOG(INFO) << (checkpoint.empty() ? "final run with the best parameters: "
                                   : "continuing the final run: ")
            << final_dir;
  ASSIGN_OR_RETURN(std::unique_ptr<Pipeline> pipeline,
                   entry->factory(final_context));
  return pipeline->Run();
}

absl::Status RunFinalAsChild(const PipelineContext& context,
                             const std::string& final_dir) {
  ChildRun run{"final", final_dir};
  run.config_path = context.run_dir + "/best_config.json";
  run.threads = context.num_threads;
  ASSIGN_OR_RETURN(ChildJob job, MakeChildRunJob(run, *context.registry));
  LOG(INFO) << "final run with the best parameters: " << final_dir;
  ChildPool pool(1);
  pool.Add(std::move(job));
  pool.Run(nullptr);
  if (pool.interrupted()) {
    return StoppedBySignal(
        "during the tune's final run; it restarts when the tune is resumed");
  }
  if (pool.status(0).state != ChildState::kSucceeded) {
    return absl::InternalError(absl::StrCat(
        "the final run failed (", ChildStateName(pool.status(0).state),
        "); see ", final_dir, ".out"));
  }
  LOG(INFO) << "final run done: " << final_dir;
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<RunConfig> TrialConfig(const PipelineContext& context,
                                      const TunePipelineConfig& tune,
                                      const Trial& trial) {
  RunConfig base = *context.config;
  base.set_pipeline(tune.trial_pipeline());
  base.clear_pipeline_config();
  base.set_run_name(absl::StrCat(base.run_name(), "_trial"));
  if (tune.trial_epochs() > 0) {
    base.mutable_run_config()->set_epochs(tune.trial_epochs());
  }
  ScoreConfig& score = *base.mutable_score_config();
  if (score.metrics().empty()) {
    score.add_metrics("loss");
    score.add_metrics("accuracy");
  }
  if (std::find(score.metrics().begin(), score.metrics().end(),
                tune.metric()) == score.metrics().end()) {
    score.add_metrics(tune.metric());
  }
  absl::StatusOr<RunConfig> config = ParseRunConfig(
      RunConfigToJson(base), context.config_source, trial.overrides);
  if (config.ok()) {
    if (absl::Status s = context.registry->CheckConfig(*config); !s.ok()) {
      config = s;
    }
  }
  if (!config.ok()) {
    return WithContext(
        config.status(),
        absl::StrCat(context.config_source, ": pipeline_config.space gives ",
                     "trial ", trial.index, " (",
                     absl::StrJoin(trial.overrides, " "), ")"));
  }
  return config;
}

absl::StatusOr<ChildRun> PrepareTrialRun(const TrialRecord& record,
                                         const TrialLaunch& launch) {
  ChildRun run{record.name, launch.trials_dir + "/" + record.name};
  run.threads = launch.threads;
  run.timeout_seconds = launch.timeout_seconds;
  if (launch.resuming && FindCheckpoint(run.run_dir).ok()) {
    // Cut short by a stopped or killed tune: it goes on from its newest
    // checkpoint and ends as if never stopped.
    run.resume = run.run_dir;
    return run;
  }
  std::error_code ec;
  fs::remove_all(run.run_dir, ec);  // cut short before its first checkpoint
  run.config_path = run.run_dir + ".json";
  RETURN_IF_ERROR(
      WriteFileAtomically(run.config_path, RunConfigToJson(record.config)));
  return run;
}

absl::Status RunFinal(const PipelineContext& context,
                      const RunConfig& best_config, bool as_child) {
  const std::string final_dir = context.run_dir + "/final";
  if (fs::exists(RunFile(final_dir, kMetricsFile))) {
    LOG(INFO) << "the final run already finished: " << final_dir;
    return absl::OkStatus();
  }
  absl::StatusOr<std::string> checkpoint = FindCheckpoint(final_dir);
  if (!as_child && checkpoint.ok()) {
    return RunFinalHere(context, best_config, final_dir, *checkpoint);
  }
  std::error_code ec;
  fs::remove_all(final_dir, ec);
  if (as_child) return RunFinalAsChild(context, final_dir);
  RETURN_IF_ERROR(MakeDirectories(final_dir));
  RETURN_IF_ERROR(WriteFileAtomically(RunFile(final_dir, kConfigFile),
                                      RunConfigToJson(best_config)));
  return RunFinalHere(context, best_config, final_dir, "");
}

}  // namespace ouroboros::tune
