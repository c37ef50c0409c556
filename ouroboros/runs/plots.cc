#include "ouroboros/runs/plots.h"

#include <cstdlib>
#include <filesystem>
#include <system_error>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "glog/logging.h"
#include "ouroboros/base/files.h"
#include "ouroboros/base/json.h"
#include "ouroboros/base/status_macros.h"
#include "ouroboros/distributed/child_process.h"
#include "ouroboros/runs/plots_py.h"
#include "ouroboros/runs/run_layout.h"

namespace ouroboros {
namespace {

constexpr char kFiguresFile[] = "figures.json";
// The plotter's console output, kept beside the plots it drew.
constexpr char kPlotterLogFile[] = "plots.log";
// Drawing takes about a second; a hung interpreter must not hold the run.
constexpr double kPlotterTimeoutSeconds = 300;

// Runs `python3 -c <plots.py> args...` with its output in `log_path`, and
// returns the files it printed, one per line.
absl::StatusOr<std::vector<std::string>> RunPlotter(
    const std::vector<std::string>& args, const std::string& log_path) {
  std::vector<std::string> argv = {PlotsPython(), "-c", kPlotsPy};
  argv.insert(argv.end(), args.begin(), args.end());
  ChildPool pool(/*max_concurrent=*/1);
  pool.Add({"plots", std::move(argv), log_path, kPlotterTimeoutSeconds, {}});
  pool.Run([](ChildPool&) {});
  const ChildJobStatus& status = pool.status(0);
  const std::string output = ReadFileToString(log_path).value_or("");
  std::vector<std::string> written;
  std::string last_line;
  for (absl::string_view line : absl::StrSplit(output, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (line.empty()) continue;
    last_line = std::string(line);
    if (absl::EndsWith(line, ".png") || absl::EndsWith(line, ".csv") ||
        absl::EndsWith(line, ".md")) {
      written.emplace_back(line);
    }
  }
  if (status.state == ChildState::kSucceeded) return written;
  std::string why;
  if (!status.error.empty()) {
    why = status.error;
  } else if (status.state == ChildState::kTimedOut) {
    why = absl::StrCat("timed out after ", kPlotterTimeoutSeconds, " s");
  } else {
    why = absl::StrCat(ChildStateName(status.state), ", exit code ",
                       status.exit_code);
  }
  return absl::UnavailableError(absl::StrCat(
      PlotsPython(), " could not draw (", why, ")",
      last_line.empty() ? "" : ": ", last_line, "; output in ", log_path));
}

google::protobuf::Value FiguresJson(const std::vector<FigureSpec>& figures) {
  google::protobuf::Value root;
  auto& list = *(*root.mutable_struct_value()->mutable_fields())["figures"]
                    .mutable_list_value();
  for (const FigureSpec& figure : figures) {
    auto& fields = *list.add_values()->mutable_struct_value()->mutable_fields();
    fields["name"].set_string_value(figure.name);
    fields["title"].set_string_value(figure.title);
    auto& series = *fields["series"].mutable_list_value();
    for (const std::string& name : figure.series) {
      series.add_values()->set_string_value(name);
    }
    fields["mark_where_present"].set_string_value(figure.mark_where_present);
    fields["mark_label"].set_string_value(figure.mark_label);
    fields["log_scale"].set_bool_value(figure.log_scale);
    fields["heatmap"].set_bool_value(figure.heatmap);
    auto& chance = *fields["chance"].mutable_struct_value()->mutable_fields();
    for (const auto& [name, level] : figure.chance) {
      chance[name].set_number_value(level);
    }
  }
  return root;
}

}  // namespace

std::string PlotsPython() {
  const char* python = std::getenv(kPythonEnvironmentVariable);
  return python != nullptr && *python != '\0' ? python : "/usr/bin/python3";
}

absl::StatusOr<std::vector<std::string>> DrawRunPlots(
    const std::string& run_dir, const std::vector<FigureSpec>& figures) {
  const std::string plots_dir = RunFile(run_dir, kPlotsDir);
  RETURN_IF_ERROR(MakeDirectories(plots_dir));
  RETURN_IF_ERROR(WriteFileAtomically(RunFile(plots_dir, kFiguresFile),
                                      FormatJson(FiguresJson(figures))));
  return RunPlotter({"run", run_dir}, RunFile(plots_dir, kPlotterLogFile));
}

absl::StatusOr<std::vector<std::string>> DrawComparison(
    const ComparisonPlot& plot) {
  RETURN_IF_ERROR(MakeDirectories(plot.out_dir));
  std::vector<std::string> args = {"compare", "--quiet", "--out", plot.out_dir};
  if (!plot.metric.empty()) {
    args.insert(args.end(), {"--metric", plot.metric});
  }
  if (!plot.mark_steps.empty()) {
    args.insert(args.end(),
                {"--mark_steps", absl::StrJoin(plot.mark_steps, ",")});
  }
  if (!plot.title.empty()) args.insert(args.end(), {"--title", plot.title});
  args.insert(args.end(), plot.run_dirs.begin(), plot.run_dirs.end());
  return RunPlotter(args, RunFile(plot.out_dir, kPlotterLogFile));
}

void CompareRunsOfPipeline(const RunConfig& config, ComparisonPlot plot,
                           const std::string& what) {
  if (config.run_config().skip_plots()) return;
  std::vector<std::string> with_records;
  for (std::string& dir : plot.run_dirs) {
    std::error_code error;
    if (std::filesystem::exists(RunFile(dir, kEpochRecordFile), error)) {
      with_records.push_back(std::move(dir));
    }
  }
  if (with_records.empty()) return;
  plot.run_dirs = std::move(with_records);
  ReportPlots(DrawComparison(plot), plot.out_dir, what);
}

void ReportPlots(const absl::StatusOr<std::vector<std::string>>& written,
                 const std::string& dir, const std::string& what) {
  if (written.ok()) {
    LOG(INFO) << absl::StrFormat("plots: %s, %d files in %s/", what,
                                 written->size(), dir);
  } else {
    LOG(WARNING) << absl::StrFormat("plots: %s not drawn (%s)", what,
                                    written.status().message());
  }
}

}  // namespace ouroboros
