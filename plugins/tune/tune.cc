// Pipeline `tune`: a search over config fields, each trial a child process
// of main in its own run directory, then a full run with the best values.
#include <algorithm>
#include <cmath>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
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
#include "ouroboros/runs/plots.h"
#include "ouroboros/runs/run_layout.h"
#include "ouroboros/runs/run_records.h"
#include "ouroboros/train/trainer.h"
#include "plugins/tune/search.h"

namespace ouroboros::tune {
namespace {

namespace fs = std::filesystem;

// What the tune knows of one trial.
struct TrialRecord {
  Trial trial;
  std::string name;  // trial-003
  ChildJobStatus status;
  std::vector<double> history;  // the metric after each finished epoch
  int64_t epochs = 0;           // its config's run_config.epochs
  int rank = 0;                 // the rank that ran it (distributed tune)
  RunConfig config;             // what the trial runs
  bool done = false;            // known from before a resume
};

double LastMetric(const TrialRecord& record) {
  return record.history.empty() ? std::nan("") : record.history.back();
}

// The metric after each epoch of a trial (NaN where it was not finite).
std::vector<double> ReadMetricHistory(const std::string& run_dir,
                                      const std::string& metric) {
  std::vector<double> history;
  for (const EpochRecord& record : ReadEpochRecords(run_dir)) {
    auto it = record.metrics.find(metric);
    history.push_back(it == record.metrics.end() ? std::nan("") : it->second);
  }
  return history;
}

// One trial in trials.json (and in the store of a distributed tune).
google::protobuf::Value RecordToJson(const TrialRecord& record) {
  google::protobuf::Value value;
  auto& trial = *value.mutable_struct_value()->mutable_fields();
  trial["name"].set_string_value(record.name);
  trial["state"].set_string_value(ChildStateName(record.status.state));
  trial["exit_code"].set_number_value(record.status.exit_code);
  trial["seconds"].set_number_value(record.status.seconds);
  trial["rank"].set_number_value(record.rank);
  auto& params = *trial["params"].mutable_struct_value()->mutable_fields();
  for (const auto& [path, param] : record.trial.params) {
    params[path].set_string_value(param);
  }
  auto* history = trial["history"].mutable_list_value();
  for (double metric : record.history) {
    if (std::isfinite(metric)) {
      history->add_values()->set_number_value(metric);
    } else {
      history->add_values()->set_null_value({});
    }
  }
  return value;
}

// The outcome RecordToJson wrote: state, exit code, seconds, rank, history.
// A state that had not ended leaves the record as it was.
void RecordFromJson(const google::protobuf::Value& value, TrialRecord* record) {
  const auto& fields = value.struct_value().fields();
  auto number = [&](const char* key) {
    auto it = fields.find(key);
    return it == fields.end() ? 0.0 : it->second.number_value();
  };
  auto state = fields.find("state");
  if (state == fields.end()) return;
  for (ChildState s : {ChildState::kSucceeded, ChildState::kFailed,
                       ChildState::kTimedOut, ChildState::kStopped}) {
    if (state->second.string_value() == ChildStateName(s)) {
      record->done = true;
      record->status.state = s;
    }
  }
  if (!record->done) return;
  record->status.exit_code = static_cast<int>(number("exit_code"));
  record->status.seconds = number("seconds");
  record->rank = static_cast<int>(number("rank"));
  record->history.clear();
  if (auto history = fields.find("history"); history != fields.end()) {
    for (const auto& v : history->second.list_value().values()) {
      record->history.push_back(v.has_number_value() ? v.number_value()
                                                     : std::nan(""));
    }
  }
}

class TunePipeline : public Pipeline {
 public:
  TunePipeline(PipelineContext context, TunePipelineConfig tune,
               std::vector<Trial> trials)
      : context_(std::move(context)), tune_(std::move(tune)) {
    for (Trial& trial : trials) {
      TrialRecord record;
      record.name = absl::StrFormat("trial-%03d", trial.index);
      record.trial = std::move(trial);
      records_.push_back(std::move(record));
    }
  }

  absl::Status Run() override {
    RETURN_IF_ERROR(JoinDistributedJob());
    const std::string trials_dir = context_.run_dir + "/trials";
    RETURN_IF_ERROR(MakeDirectories(trials_dir));
    if (context_.resuming) RETURN_IF_ERROR(RestoreRecords());
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
    PrintTable();
    PlotTrials(trials_dir);
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
      ASSIGN_OR_RETURN(record.config, TrialConfig(record.trial));
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
    const ChildRunBudget budget =
        PlanChildRuns(tune_.max_concurrent(), tune_.trial_threads());
    const int concurrent = budget.concurrent;
    const int threads = budget.threads;
    LOG(INFO) << absl::StrFormat(
        "tune: %s search, %d trials, %d at once with %d threads each; %s %s; "
        "early stopping: %s",
        tune_.search(), records_.size(), concurrent, threads, tune_.mode(),
        tune_.metric(), tune_.early_stopping().method());
    const TrialLauncher launch{threads, trials_dir};
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

  // How every trial of this tune is started.
  struct TrialLauncher {
    int threads = 1;
    std::string trials_dir;
  };

  // Queues trial `record_index` in `pool`. Only the rank that runs a trial
  // touches its files.
  absl::Status AddTrial(const TrialLauncher& launch, int record_index,
                        ChildPool& pool) {
    TrialRecord& record = records_[record_index];
    ChildRun run{record.name, launch.trials_dir + "/" + record.name};
    run.threads = launch.threads;
    run.timeout_seconds = tune_.trial_timeout_seconds();
    if (context_.resuming && FindCheckpoint(run.run_dir).ok()) {
      // Cut short by a stopped or killed tune: it goes on from its newest
      // checkpoint and ends as if never stopped.
      run.resume = run.run_dir;
    } else {
      std::error_code ec;
      fs::remove_all(run.run_dir, ec);  // cut short before its first checkpoint
      run.config_path = run.run_dir + ".json";
      RETURN_IF_ERROR(
          WriteFileAtomically(run.config_path, RunConfigToJson(record.config)));
    }
    // A trial is a plain run even when the tune is one rank of a job.
    ASSIGN_OR_RETURN(ChildJob job, MakeChildRunJob(run, *context_.registry));
    record.rank = group_ != nullptr ? group_->config().rank : 0;
    job_records_.push_back(record_index);
    pool.Add(std::move(job));
    return absl::OkStatus();
  }

  // Every trial that got as far as an epoch on one chart, in plots/.
  void PlotTrials(const std::string& trials_dir) {
    ComparisonPlot plot;
    plot.out_dir = RunFile(context_.run_dir, kPlotsDir);
    plot.metric = tune_.metric();
    plot.title = "tune trials";
    for (const TrialRecord& record : records_) {
      plot.run_dirs.push_back(trials_dir + "/" + record.name);
    }
    CompareRunsOfPipeline(*context_.config, std::move(plot),
                          "the trials' comparison");
  }

  // best_config.json from the best finished trial, then the final run with
  // it (unless skip_final_run).
  absl::Status RunTheBest(const std::string& trials_dir) {
    const TrialRecord* best = Best();
    if (best == nullptr) {
      return absl::InternalError(
          absl::StrCat("every trial failed; see ", trials_dir, "/trial-*.out"));
    }
    LOG(INFO) << absl::StrFormat("best: %s, %s %.4f with %s", best->name,
                                 tune_.metric(), LastMetric(*best),
                                 absl::StrJoin(best->trial.overrides, " "));
    ASSIGN_OR_RETURN(RunConfig best_config, TrialConfig(best->trial));
    best_config.mutable_run_config()->set_epochs(
        context_.config->run_config().epochs());
    RETURN_IF_ERROR(WriteFileAtomically(context_.run_dir + "/best_config.json",
                                        RunConfigToJson(best_config)));
    LOG(INFO) << "best config: " << context_.run_dir << "/best_config.json";
    if (tune_.skip_final_run()) return absl::OkStatus();
    return FinalRun(best_config);
  }

  // The base config with the trial's values, run by trial_pipeline for
  // trial_epochs, and measuring the tuned metric.
  absl::StatusOr<RunConfig> TrialConfig(const Trial& trial) const {
    RunConfig base = *context_.config;
    base.set_pipeline(tune_.trial_pipeline());
    base.clear_pipeline_config();
    base.set_run_name(absl::StrCat(base.run_name(), "_trial"));
    if (tune_.trial_epochs() > 0) {
      base.mutable_run_config()->set_epochs(tune_.trial_epochs());
    }
    ScoreConfig& score = *base.mutable_score_config();
    if (score.metrics().empty()) {
      score.add_metrics("loss");
      score.add_metrics("accuracy");
    }
    if (std::find(score.metrics().begin(), score.metrics().end(),
                  tune_.metric()) == score.metrics().end()) {
      score.add_metrics(tune_.metric());
    }
    absl::StatusOr<RunConfig> config = ParseRunConfig(
        RunConfigToJson(base), context_.config_source, trial.overrides);
    if (config.ok()) {
      if (absl::Status s = context_.registry->CheckConfig(*config); !s.ok()) {
        config = s;
      }
    }
    if (!config.ok()) {
      return WithContext(
          config.status(),
          absl::StrCat(context_.config_source, ": pipeline_config.space gives ",
                       "trial ", trial.index, " (",
                       absl::StrJoin(trial.overrides, " "), ")"));
    }
    return config;
  }

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
              ShouldStop(i)) {
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
            absl::StrCat("tune/result/", i), FormatJson(RecordToJson(record)));
        if (!published.ok()) LOG(ERROR) << published.message();
      }
    }
    if (!changed) return;
    if (group_ == nullptr) (void)WriteResults();
    int ended = 0, running = 0, failed = 0;
    for (const TrialRecord& record : records_) {
      ended += record.done;
      running += record.status.state == ChildState::kRunning;
      failed += record.status.state == ChildState::kFailed ||
                record.status.state == ChildState::kTimedOut;
    }
    const TrialRecord* best = Best();
    bar->Update(ended,
                absl::StrFormat(
                    "%d running, %d failed%s", running, failed,
                    best == nullptr
                        ? ""
                        : absl::StrFormat(", best %s %.4f (%s)", tune_.metric(),
                                          LastMetric(*best), best->name)));
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
      RecordFromJson(*value, &records_[i]);
    }
    return absl::OkStatus();
  }

  bool ShouldStop(int index) const {
    std::vector<std::vector<double>> others;
    for (int j = 0; j < static_cast<int>(records_.size()); ++j) {
      if (j != index && !records_[j].history.empty()) {
        others.push_back(records_[j].history);
      }
    }
    const EarlyStopping& rule = tune_.early_stopping();
    const std::vector<double>& history = records_[index].history;
    if (rule.method() == "median") {
      return MedianRuleStops(history, others, rule, tune_.mode());
    }
    if (rule.method() == "asha") {
      return AshaStops(history, others, rule, tune_.mode());
    }
    return false;
  }

  // The best trial that ran to its end, or nullptr.
  const TrialRecord* Best() const {
    const TrialRecord* best = nullptr;
    for (const TrialRecord& record : records_) {
      if (record.status.state != ChildState::kSucceeded) continue;
      const double value = LastMetric(record);
      if (!std::isfinite(value)) continue;
      if (best == nullptr || Better(value, LastMetric(*best), tune_.mode())) {
        best = &record;
      }
    }
    return best;
  }

  // trials.json (read back on resume) and trials.csv.
  absl::Status WriteResults() const {
    google::protobuf::Value root;
    auto& fields = *root.mutable_struct_value()->mutable_fields();
    fields["metric"].set_string_value(tune_.metric());
    fields["mode"].set_string_value(tune_.mode());
    auto* list = fields["trials"].mutable_list_value();
    std::vector<std::string> csv_rows;
    const std::vector<std::string> paths = SearchedPaths(tune_);
    csv_rows.push_back(absl::StrCat("trial,state,", absl::StrJoin(paths, ","),
                                    ",", tune_.metric(), ",epochs,seconds"));
    for (const TrialRecord& record : records_) {
      *list->add_values() = RecordToJson(record);
      std::vector<std::string> values;
      for (const auto& [path, value] : record.trial.params) {
        values.push_back(absl::StrCat(
            "\"", absl::StrReplaceAll(value, {{"\"", "\"\""}}), "\""));
      }
      const double metric = LastMetric(record);
      csv_rows.push_back(absl::StrFormat(
          "%s,%s,%s,%s,%d,%.1f", record.name,
          ChildStateName(record.status.state), absl::StrJoin(values, ","),
          std::isfinite(metric) ? absl::StrFormat("%.6g", metric) : "",
          record.history.size(), record.status.seconds));
    }
    RETURN_IF_ERROR(WriteFileAtomically(context_.run_dir + "/trials.json",
                                        FormatJson(root)));
    return WriteFileAtomically(context_.run_dir + "/trials.csv",
                               absl::StrJoin(csv_rows, "\n") + "\n");
  }

  absl::Status RestoreRecords() {
    const std::string path = context_.run_dir + "/trials.json";
    if (!fs::exists(path)) return absl::OkStatus();  // killed before any trial
    absl::StatusOr<google::protobuf::Value> root = ReadJsonFile(path);
    if (!root.ok()) return root.status();
    const auto& trials =
        root->struct_value().fields().at("trials").list_value().values();
    for (const google::protobuf::Value& value : trials) {
      const auto& fields = value.struct_value().fields();
      const std::string name = fields.at("name").string_value();
      auto record =
          std::find_if(records_.begin(), records_.end(),
                       [&](const TrialRecord& r) { return r.name == name; });
      if (record == records_.end()) continue;
      for (const auto& [param, param_value] :
           fields.at("params").struct_value().fields()) {
        auto mine = record->trial.params.find(param);
        if (mine == record->trial.params.end() ||
            mine->second != param_value.string_value()) {
          return absl::FailedPreconditionError(absl::StrCat(
              path, ": ", name, " had ", param, "=", param_value.string_value(),
              "; the config's search changed since, so this tune cannot be "
              "resumed (start a new one)"));
        }
      }
      RecordFromJson(value, &*record);
    }
    return absl::OkStatus();
  }

  void PrintTable() const {
    const std::vector<std::string> paths = SearchedPaths(tune_);
    std::string table = absl::StrFormat("%-10s %-10s", "trial", "state");
    for (const std::string& path : paths) {
      table += absl::StrFormat(" %-22s", path);
    }
    table +=
        absl::StrFormat(" %10s %6s %8s\n", tune_.metric(), "epochs", "seconds");
    for (const TrialRecord& record : records_) {
      table += absl::StrFormat("%-10s %-10s", record.name,
                               ChildStateName(record.status.state));
      for (const std::string& path : paths) {
        table += absl::StrFormat(" %-22s", record.trial.params.at(path));
      }
      const double metric = LastMetric(record);
      table += absl::StrFormat(
          " %10s %6d %8.1f\n",
          std::isfinite(metric) ? absl::StrFormat("%.4f", metric) : "-",
          record.history.size(), record.status.seconds);
    }
    LOG(INFO) << "trials (also in trials.csv, trials.json):\n" << table;
  }

  absl::Status FinalRun(const RunConfig& best_config) {
    const std::string final_dir = context_.run_dir + "/final";
    std::error_code ec;
    if (fs::exists(RunFile(final_dir, kMetricsFile))) {
      LOG(INFO) << "the final run already finished: " << final_dir;
      return absl::OkStatus();
    }
    absl::StatusOr<std::string> checkpoint = FindCheckpoint(final_dir);
    if (group_ == nullptr && checkpoint.ok()) {
      return RunFinal(best_config, final_dir, *checkpoint);
    }
    fs::remove_all(final_dir, ec);
    if (group_ != nullptr) return FinalRunAsChild(final_dir);
    RETURN_IF_ERROR(MakeDirectories(final_dir));
    RETURN_IF_ERROR(WriteFileAtomically(RunFile(final_dir, kConfigFile),
                                        RunConfigToJson(best_config)));
    return RunFinal(best_config, final_dir, "");
  }

  // In this process; continuing from `checkpoint` when it is not empty.
  absl::Status RunFinal(const RunConfig& best_config,
                        const std::string& final_dir,
                        const std::string& checkpoint) {
    absl::StatusOr<const PipelineEntry*> entry =
        context_.registry->FindPipeline(best_config.pipeline());
    if (!entry.ok()) return entry.status();
    PipelineContext final_context = context_;
    final_context.config = &best_config;
    final_context.config_source = context_.run_dir + "/best_config.json";
    final_context.run_dir = final_dir;
    final_context.resuming = !checkpoint.empty();
    final_context.resume_from = checkpoint;
    LOG(INFO) << (checkpoint.empty() ? "final run with the best parameters: "
                                     : "continuing the final run: ")
              << final_dir;
    absl::StatusOr<std::unique_ptr<Pipeline>> pipeline =
        (*entry)->factory(final_context);
    if (!pipeline.ok()) return pipeline.status();
    return (*pipeline)->Run();
  }

  // Rank 0 of a distributed tune: the final run is a plain single-process
  // run (not a rank of this job), in a child process.
  absl::Status FinalRunAsChild(const std::string& final_dir) {
    ChildRun run{"final", final_dir};
    run.config_path = context_.run_dir + "/best_config.json";
    run.threads = context_.num_threads;
    ASSIGN_OR_RETURN(ChildJob job, MakeChildRunJob(run, *context_.registry));
    LOG(INFO) << "final run with the best parameters: " << final_dir;
    ChildPool pool(1);
    pool.Add(std::move(job));
    pool.Run(nullptr);
    if (pool.interrupted()) {
      return StoppedBySignal(
          "during the tune's final run; it restarts when the "
          "tune is resumed");
    }
    if (pool.status(0).state != ChildState::kSucceeded) {
      return absl::InternalError(absl::StrCat(
          "the final run failed (", ChildStateName(pool.status(0).state),
          "); see ", final_dir, ".out"));
    }
    LOG(INFO) << "final run done: " << final_dir;
    return absl::OkStatus();
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
