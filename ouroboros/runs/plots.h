// Plots of runs: PNGs drawn by plots.py (ouroboros/runs/plots_*.py) with
// matplotlib, in a child python3 that gets the script's text (embedded in the
// core) on its command line, so no source file is needed at run time.
//
//   DrawRunPlots(run_dir, model.Figures())
//     -> <run_dir>/plots/loss.png, <monitor>.png, lr.png, <figure>.png
//   DrawComparison({.out_dir = run_dir + "/plots", .run_dirs = trials})
//     -> compare_loss.png, compare_<metric>.png, compare.md, compare.csv
//
// Plots are a by-product: callers log a failure (no python3-matplotlib,
// say) as a warning and carry on; the run's results are in its JSON files
// either way. tools/compare_runs runs the same script from a shell.
#ifndef OUROBOROS_RUNS_PLOTS_H_
#define OUROBOROS_RUNS_PLOTS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "ouroboros/api/interfaces.h"

namespace ouroboros {

// The interpreter that draws: $OUROBOROS_PYTHON if set, else Debian's
// /usr/bin/python3 (which python3-matplotlib is installed for; a python3
// earlier on PATH, such as a pyenv one, usually lacks it).
inline constexpr char kPythonEnvironmentVariable[] = "OUROBOROS_PYTHON";
std::string PlotsPython();

// Writes <run_dir>/plots/figures.json (the model's figures) and draws every
// plot of the run. Returns the PNG files written.
absl::StatusOr<std::vector<std::string>> DrawRunPlots(
    const std::string& run_dir, const std::vector<FigureSpec>& figures);

struct ComparisonPlot {
  std::string out_dir;
  std::vector<std::string> run_dirs;
  // The curve compared besides the loss; empty: the runs' monitored metric.
  std::string metric;
  // Steps marked by a vertical line on every chart (e.g. introspection
  // jumps).
  std::vector<int64_t> mark_steps;
  std::string title;
};

// Every run on one chart per curve, and their metrics.json side by side
// (compare.md, compare.csv in out_dir). Returns the files written.
absl::StatusOr<std::vector<std::string>> DrawComparison(
    const ComparisonPlot& plot);

// For a pipeline that ran other runs (tune, parallel, a demo): unless
// config.run_config().skip_plots, compares those of plot.run_dirs that have
// epoch records (a member that is itself a tune has none; a trial that
// failed before its first epoch neither), and logs the outcome (ReportPlots,
// `what` naming the comparison).
void CompareRunsOfPipeline(const RunConfig& config, ComparisonPlot plot,
                           const std::string& what);

// Logs what a Draw* call gave: "plots: 3 files in DIR" (INFO), or why there
// are none (WARNING), `what` naming them ("the trials' comparison").
void ReportPlots(const absl::StatusOr<std::vector<std::string>>& written,
                 const std::string& dir, const std::string& what);

}  // namespace ouroboros

#endif  // OUROBOROS_RUNS_PLOTS_H_
