#include "plugins/tune/trial_reports.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "ouroboros/runs/plots.h"
#include "ouroboros/runs/run_layout.h"

namespace ouroboros::tune {

std::string TrialsCsv(const TunePipelineConfig& tune,
                      const std::vector<TrialRecord>& records) {
  std::vector<std::string> rows;
  rows.push_back(absl::StrCat("trial,state,",
                              absl::StrJoin(SearchedPaths(tune), ","), ",",
                              tune.metric(), ",epochs,seconds"));
  for (const TrialRecord& record : records) {
    std::vector<std::string> values;
    for (const auto& [path, value] : record.trial.params) {
      values.push_back(absl::StrCat(
          "\"", absl::StrReplaceAll(value, {{"\"", "\"\""}}), "\""));
    }
    const double metric = LastMetric(record);
    rows.push_back(absl::StrFormat(
        "%s,%s,%s,%s,%d,%.1f", record.name, ChildStateName(record.status.state),
        absl::StrJoin(values, ","),
        std::isfinite(metric) ? absl::StrFormat("%.6g", metric) : "",
        record.history.size(), record.status.seconds));
  }
  return absl::StrJoin(rows, "\n") + "\n";
}

std::string TrialTable(const TunePipelineConfig& tune,
                       const std::vector<TrialRecord>& records) {
  const std::vector<std::string> paths = SearchedPaths(tune);
  std::string table = absl::StrFormat("%-10s %-10s", "trial", "state");
  for (const std::string& path : paths) {
    table += absl::StrFormat(" %-22s", path);
  }
  table +=
      absl::StrFormat(" %10s %6s %8s\n", tune.metric(), "epochs", "seconds");
  for (const TrialRecord& record : records) {
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
  return table;
}

std::string TrialsProgress(const TunePipelineConfig& tune,
                           const std::vector<TrialRecord>& records) {
  int running = 0, failed = 0;
  for (const TrialRecord& record : records) {
    running += record.status.state == ChildState::kRunning;
    failed += record.status.state == ChildState::kFailed ||
              record.status.state == ChildState::kTimedOut;
  }
  const TrialRecord* best = BestTrial(records, tune.mode());
  return absl::StrFormat(
      "%d running, %d failed%s", running, failed,
      best == nullptr ? ""
                      : absl::StrFormat(", best %s %.4f (%s)", tune.metric(),
                                        LastMetric(*best), best->name));
}

void PlotTrials(const RunConfig& config, const std::string& run_dir,
                const TunePipelineConfig& tune,
                const std::vector<TrialRecord>& records) {
  ComparisonPlot plot;
  plot.out_dir = RunFile(run_dir, kPlotsDir);
  plot.metric = tune.metric();
  plot.title = "tune trials";
  for (const TrialRecord& record : records) {
    plot.run_dirs.push_back(run_dir + "/trials/" + record.name);
  }
  CompareRunsOfPipeline(config, std::move(plot), "the trials' comparison");
}

}  // namespace ouroboros::tune
