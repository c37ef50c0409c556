// Pipeline `tune`: a search over config fields, each trial a child process
// of main in its own run directory, then a full run with the best values.
// This file runs the tune; its parts are the search and the early-stopping
// rules (search.h), the trial store (trial_store.h), the launcher
// (trial_launcher.h) and the reports (trial_reports.h).
#include <algorithm>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "glog/logging.h"
#include "ouroboros/api/plugin_api.h"
#include "ouroboros/api/registry.h"
#include "ouroboros/base/errors.h"
#include "ouroboros/base/files.h"
#include "ouroboros/base/json.h"
#include "ouroboros/base/progress.h"
#include "ouroboros/base/status_macros.h"
#include "ouroboros/base/stop_signal.h"
#include "ouroboros/config/config.h"
#include "ouroboros/distributed/child_process.h"
#include "ouroboros/distributed/child_run.h"
#include "ouroboros/distributed/distributed.h"
#include "plugins/tune/search.h"
#include "plugins/tune/trial_launcher.h"
#include "plugins/tune/trial_reports.h"
#include "plugins/tune/trial_store.h"

namespace ouroboros::tune {
namespace {

class TunePipeline : public Pipeline {
 public:
  TunePipeline(PipelineContext context, TunePipelineConfig tune,
               std::vector<Trial> trials)
      : context_(std::move(context)),
        tune_(std::move(tune)),
        records_(NewTrialRecords(std::move(trials))) {}

  absl::Status Run() override {
    RETURN_IF_ERROR(JoinDistributedJob());
    const std::string trials_dir = context_.run_dir + "/trials";
    RETURN_IF_ERROR(MakeDirectories(trials_dir));
    if (context_.resuming) {
      RETURN_IF_ERROR(RestoreTrialStore(context_.run_dir, &records_));
    }
    RETURN_IF_ERROR(CheckTrialConfigs());
    RETURN_IF_ERROR(RunTrials(trials_dir));
    if (group_ != nullptr) {
      if (group_->config().rank != 0) {
        LOG(WARNING) << absl::StrFormat(
            "tune: rank %d ran %d trials; rank 0 reports them",
            group_->config().rank, job_records_.size());
        return absl::OkStatus();
      }
      RETURN_IF_ERROR(GatherFromOtherRanks());
    }
    RETURN_IF_ERROR(WriteResults());
    LOG(INFO) << "trials (also in trials.csv, trials.json):\n"
              << TrialTable(tune_, records_);
    PlotTrials(*context_.config, context_.run_dir, tune_, records_);
    return RunTheBest(trials_dir);
  }

 private:
  // A rank of a distributed job joins it first: the rendezvous completes
  // only when rank 0 is here too, past main's checks of the run directory,
  // so no rank writes into it before then.
  absl::Status JoinDistributedJob() {
    ASSIGN_OR_RETURN(DistributedConfig distributed,
                     DistributedFromEnvironment());
    if (!distributed.enabled()) return absl::OkStatus();
    if (context_.resuming) {
      return absl::FailedPreconditionError(
          "a tune over several ranks cannot be resumed; resume it as one "
          "process (without WORLD_SIZE or --nproc)");
    }
    ASSIGN_OR_RETURN(group_, ProcessGroup::Connect(distributed));
    LOG(WARNING) << absl::StrFormat(
        "tune: rank %d of %d takes trials from the job's store",
        distributed.rank, distributed.world_size);
    return absl::OkStatus();
  }

  // Every trial's config is checked before any trial runs.
  absl::Status CheckTrialConfigs() {
    for (TrialRecord& record : records_) {
      if (record.done) continue;
      ASSIGN_OR_RETURN(record.config,
                       TrialConfig(context_, tune_, record.trial));
      // A trial's own plots would cost each trial about a second (counted
      // against trial_timeout_seconds); the tune draws every trial on one
      // chart instead, and the final run draws its own.
      record.config.mutable_run_config()->set_skip_plots(true);
      record.epochs = record.config.run_config().epochs();
    }
    if (context_.resuming) {
      LOG(INFO) << absl::StrFormat("resuming: %d of %d trials already done",
                                   DoneTrials(), records_.size());
    }
    return absl::OkStatus();
  }

  int64_t DoneTrials() const {
    return std::count_if(records_.begin(), records_.end(),
                         [](const TrialRecord& r) { return r.done; });
  }

  // Runs the trials as child processes, `concurrent` at once (in a
  // distributed job: the trials this rank claims from the store).
  absl::Status RunTrials(const std::string& trials_dir) {
    const ChildRunBudget budget = PlanChildRuns(
        tune_.max_concurrent(), tune_.trial_threads(), context_.num_threads);
    const int concurrent = budget.concurrent;
    const int threads = budget.threads;
    LOG(INFO) << absl::StrFormat(
        "tune: %s search, %d trials, %d at once with %d threads each; %s %s; "
        "early stopping: %s",
        tune_.search(), records_.size(), concurrent, threads, tune_.mode(),
        tune_.metric(), tune_.early_stopping().method());
    TrialLaunch launch;
    launch.threads = threads;
    launch.trials_dir = trials_dir;
    launch.timeout_seconds = tune_.trial_timeout_seconds();
    launch.resuming = context_.resuming;
    ChildPool pool(concurrent);
    if (group_ == nullptr) {
      for (int i = 0; i < static_cast<int>(records_.size()); ++i) {
        if (!records_[i].done) RETURN_IF_ERROR(AddTrial(launch, i, pool));
      }
    }
    bool store_exhausted = false;
    // Distributed: take the next trial from the store whenever a slot is
    // free, so faster ranks run more trials.
    auto claim_trials = [&](ChildPool& p) -> absl::Status {
      while (group_ != nullptr && !store_exhausted &&
             p.CountIn(ChildState::kRunning) + p.CountIn(ChildState::kQueued) <
                 concurrent) {
        ASSIGN_OR_RETURN(const int64_t next, group_->StoreAdd("tune/next", 1));
        if (next > static_cast<int64_t>(records_.size())) {
          store_exhausted = true;
          break;
        }
        RETURN_IF_ERROR(AddTrial(launch, static_cast<int>(next - 1), p));
      }
      return absl::OkStatus();
    };
    ProgressBar bar("trials", static_cast<int64_t>(records_.size()), 0);
    absl::Status claim_status;
    pool.Run([&](ChildPool& p) {
      if (claim_status.ok()) claim_status = claim_trials(p);
      Watch(p, trials_dir, &bar);
    });
    bar.Finish();
    RETURN_IF_ERROR(claim_status);
    if (!pool.interrupted()) return absl::OkStatus();
    if (group_ == nullptr) (void)WriteResults();
    return StoppedBySignal(absl::StrFormat(
        "during the tune: %d of %d trials done, the others stopped at a "
        "checkpoint; continue with --resume=%s",
        DoneTrials(), records_.size(), context_.run_dir));
  }

  // Queues trial `record_index` in `pool`. Only the rank that runs a trial
  // touches its files.
  absl::Status AddTrial(const TrialLaunch& launch, int record_index,
                        ChildPool& pool) {
    TrialRecord& record = records_[record_index];
    ASSIGN_OR_RETURN(const ChildRun run, PrepareTrialRun(record, launch));
    // A trial is a plain run even when the tune is one rank of a job.
    ASSIGN_OR_RETURN(ChildJob job, MakeChildRunJob(run, *context_.registry));
    record.rank = group_ != nullptr ? group_->config().rank : 0;
    job_records_.push_back(record_index);
    pool.Add(std::move(job));
    return absl::OkStatus();
  }

  // best_config.json from the best finished trial, then the final run with
  // it (unless skip_final_run).
  absl::Status RunTheBest(const std::string& trials_dir) {
    const TrialRecord* best = BestTrial(records_, tune_.mode());
    if (best == nullptr) {
      return absl::InternalError(
          absl::StrCat("every trial failed; see ", trials_dir, "/trial-*.out"));
    }
    LOG(INFO) << absl::StrFormat("best: %s, %s %.4f with %s", best->name,
                                 tune_.metric(), LastMetric(*best),
                                 absl::StrJoin(best->trial.overrides, " "));
    ASSIGN_OR_RETURN(RunConfig best_config,
                     TrialConfig(context_, tune_, best->trial));
    best_config.mutable_run_config()->set_epochs(
        context_.config->run_config().epochs());
    RETURN_IF_ERROR(WriteFileAtomically(context_.run_dir + "/best_config.json",
                                        RunConfigToJson(best_config)));
    LOG(INFO) << "best config: " << context_.run_dir << "/best_config.json";
    if (tune_.skip_final_run()) return absl::OkStatus();
    return RunFinal(context_, best_config, /*as_child=*/group_ != nullptr);
  }

  // After every change of the pool: each trial's history from its
  // epochs.jsonl, the early-stopping rule, the trials that ended (published
  // to the store of a distributed tune), trials.json and the progress bar.
  void Watch(ChildPool& pool, const std::string& trials_dir, ProgressBar* bar) {
    bool changed = false;
    for (int job = 0; job < pool.size(); ++job) {
      const int i = job_records_[job];
      TrialRecord& record = records_[i];
      if (record.done) continue;
      const ChildJobStatus& status = pool.status(job);
      if (status.state != ChildState::kQueued) {
        std::vector<double> history =
            ReadMetricHistory(trials_dir + "/" + record.name, tune_.metric());
        if (history.size() > record.history.size()) {
          record.history = std::move(history);
          // A trial past its last epoch is only evaluating: never stopped.
          const bool training =
              static_cast<int64_t>(record.history.size()) < record.epochs;
          if (status.state == ChildState::kRunning && training &&
              EarlyStoppingEndsTrial(records_, i, tune_)) {
            LOG(INFO) << absl::StrFormat(
                "%s: stopped early after epoch %d (%s %.4f, rule: %s)",
                record.name, record.history.size(), tune_.metric(),
                LastMetric(record), tune_.early_stopping().method());
            pool.Stop(job);
          }
        }
      }
      if (status.state == record.status.state) continue;
      record.status = status;
      changed = true;
      if (status.state == ChildState::kRunning ||
          status.state == ChildState::kQueued ||
          status.state == ChildState::kInterrupted) {
        continue;  // an interrupted trial goes on when the tune is resumed
      }
      record.done = true;
      LOG(INFO) << absl::StrFormat(
          "%s %s after %.1f s: %s %.4f (%s)", record.name,
          ChildStateName(status.state), status.seconds, tune_.metric(),
          LastMetric(record), absl::StrJoin(record.trial.overrides, " "));
      if (group_ != nullptr) {
        absl::Status published = group_->StoreSet(
            absl::StrCat("tune/result/", i), FormatJson(TrialToJson(record)));
        if (!published.ok()) LOG(ERROR) << published.message();
      }
    }
    if (!changed) return;
    if (group_ == nullptr) (void)WriteResults();
    bar->Update(DoneTrials(), TrialsProgress(tune_, records_));
  }

  // Rank 0 of a distributed tune: every trial's outcome, from the store.
  absl::Status GatherFromOtherRanks() {
    const double wait_seconds =
        tune_.trial_timeout_seconds() > 0
            ? tune_.trial_timeout_seconds() * records_.size() + 600
            : 7 * 24 * 3600;
    for (int i = 0; i < static_cast<int>(records_.size()); ++i) {
      if (records_[i].done) continue;
      absl::StatusOr<std::string> text =
          group_->StoreGet(absl::StrCat("tune/result/", i), wait_seconds);
      if (!text.ok()) return text.status();
      absl::StatusOr<google::protobuf::Value> value = ParseJson(*text);
      if (!value.ok()) return value.status();
      TrialFromJson(*value, &records_[i]);
    }
    return absl::OkStatus();
  }

  // trials.json (read back on resume) and trials.csv.
  absl::Status WriteResults() const {
    RETURN_IF_ERROR(WriteTrialStore(context_.run_dir, tune_, records_));
    return WriteFileAtomically(context_.run_dir + "/trials.csv",
                               TrialsCsv(tune_, records_));
  }

  PipelineContext context_;
  TunePipelineConfig tune_;
  std::vector<TrialRecord> records_;
  std::vector<int> job_records_;         // pool job -> records_ index
  std::unique_ptr<ProcessGroup> group_;  // a distributed tune's job
};

// Before the run directory exists: the search itself, and every trial's
// values against the core schema (plugin sections are checked by the
// registry when the trials are written).
absl::Status ValidateTuneConfig(const RunConfig& config) {
  absl::StatusOr<TunePipelineConfig> tune = ParseTuneConfig(config);
  if (!tune.ok()) return tune.status();
  absl::StatusOr<std::vector<Trial>> trials = MakeTrials(*tune, config.seed());
  if (!trials.ok()) return trials.status();
  const std::string base = RunConfigToJson(config);
  for (const Trial& trial : *trials) {
    absl::StatusOr<RunConfig> trial_config =
        ParseRunConfig(base, "", trial.overrides);
    if (!trial_config.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("pipeline_config.space: trial ", trial.index, " (",
                       absl::StrJoin(trial.overrides, " "),
                       "): ", trial_config.status().message()));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Pipeline>> MakeTunePipeline(
    const PipelineContext& context) {
  absl::StatusOr<TunePipelineConfig> tune = ParseTuneConfig(*context.config);
  if (!tune.ok()) return WithContext(tune.status(), context.config_source);
  absl::StatusOr<std::vector<Trial>> trials =
      MakeTrials(*tune, context.config->seed());
  if (!trials.ok()) return WithContext(trials.status(), context.config_source);
  if (trials->empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(context.config_source, ": the search gives no trials"));
  }
  auto pipeline = std::make_unique<TunePipeline>(context, *std::move(tune),
                                                 *std::move(trials));
  return pipeline;
}

}  // namespace

OUROBOROS_REGISTER_PIPELINE(
    "tune",
    "Search config fields (grid/random, median/ASHA early stopping), each "
    "trial its own process; then a full run with the best values",
    MakeTunePipeline, ValidateTuneConfig,
    SectionDefaultsOf<TunePipelineConfig>(FillDerivedTuneDefaults));

}  // namespace ouroboros::tune
