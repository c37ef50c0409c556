// Pipeline `parallel`: several pipelines (Demo runs, tunes) side by side,
// each a child process of main with its own run directory; one status line
// per pipeline while they run, a summary table at the end.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "glog/logging.h"
#include "ouroboros/api/plugin_api.h"
#include "ouroboros/api/registry.h"
#include "ouroboros/base/errors.h"
#include "ouroboros/base/files.h"
#include "ouroboros/base/json.h"
#include "ouroboros/base/status_macros.h"
#include "ouroboros/base/stop_signal.h"
#include "ouroboros/config/config.h"
#include "ouroboros/config/config_checks.h"
#include "ouroboros/distributed/child_process.h"
#include "ouroboros/distributed/child_run.h"
#include "ouroboros/distributed/distributed.h"
#include "ouroboros/runs/plots.h"
#include "ouroboros/runs/run_layout.h"
#include "ouroboros/runs/run_metrics.h"
#include "ouroboros/runs/run_records.h"
#include "ouroboros/runs/run_spec.h"
#include "ouroboros/train/trainer.h"
#include "plugins/parallel/parallel.pb.h"

namespace ouroboros::parallel {
namespace {

// One pipeline of the job, its config resolved.
struct Member {
  std::string name;
  RunConfig config;
};

std::string SpecField(int index, absl::string_view field = "") {
  return absl::StrCat("pipeline_config.pipelines[", index, "]",
                      field.empty() ? "" : ".", field);
}

bool IsPlainName(const std::string& name) {
  return !name.empty() && name != "." && name != ".." &&
         std::all_of(name.begin(), name.end(), [](char c) {
           return std::isalnum(static_cast<unsigned char>(c)) || c == '_' ||
                  c == '-' || c == '.';
         });
}

absl::StatusOr<ParallelPipelineConfig> ParseParallelConfig(
    const RunConfig& config) {
  ASSIGN_OR_RETURN(ParallelPipelineConfig parallel,
                   ParseSection<ParallelPipelineConfig>(
                       config.pipeline_config(), "pipeline_config"));
  if (parallel.pipelines().empty()) {
    return ConfigFieldError("pipeline_config.pipelines",
                            "list at least one pipeline, e.g. "
                            "[{\"config\": \"configs/mlp.json\"}]");
  }
  for (int i = 0; i < parallel.pipelines_size(); ++i) {
    const PipelineSpec& spec = parallel.pipelines(i);
    const int sources = !spec.config().empty() + spec.has_inline_config() +
                        !spec.model().empty();
    if (sources != 1) {
      return ConfigFieldError(SpecField(i),
                              "give exactly one of config, inline_config, "
                              "model");
    }
    if (!spec.name().empty() && !IsPlainName(spec.name())) {
      return ConfigFieldError(
          SpecField(i, "name"),
          absl::StrCat("'", spec.name(),
                       "' is not a plain name (letters, digits, _ - .)"));
    }
  }
  RETURN_IF_ERROR(
      CheckAtLeast("pipeline_config.workers", parallel.workers(), 0));
  RETURN_IF_ERROR(CheckAtLeast("pipeline_config.threads_per_pipeline",
                               parallel.threads_per_pipeline(), 0));
  RETURN_IF_ERROR(CheckAtLeast("pipeline_config.timeout_seconds",
                               parallel.timeout_seconds(), 0.0));
  return parallel;
}

// Reads every member's config. Without a registry (the validator, before
// plugins matter) `model` members are left out and plugin sections are not
// checked.
absl::StatusOr<std::vector<Member>> ResolveMembers(
    const ParallelPipelineConfig& parallel, const PluginRegistry* registry) {
  std::vector<Member> members;
  std::set<std::string> names;
  for (int i = 0; i < parallel.pipelines_size(); ++i) {
    const PipelineSpec& spec = parallel.pipelines(i);
    const std::vector<std::string> overrides(spec.set().begin(),
                                             spec.set().end());
    // Without a registry (the validator) a `model` member is left for later.
    if (registry == nullptr && spec.config().empty() &&
        !spec.has_inline_config()) {
      continue;
    }
    RunSpecSource run_source;
    run_source.where = SpecField(i);
    run_source.config_file = spec.config();
    if (spec.has_inline_config()) {
      run_source.inline_config = &spec.inline_config();
    }
    run_source.model = spec.model();
    absl::StatusOr<ResolvedRunSpec> resolved =
        ResolveRunSpec(run_source, overrides, registry);
    if (!resolved.ok()) return resolved.status();
    absl::StatusOr<RunConfig> config = std::move(resolved->config);
    // A plugin's complaint about a file names the entry that gave it.
    const std::string source =
        spec.config().empty() ? resolved->source : SpecField(i, "config");
    absl::Status checked =
        config->pipeline() == "parallel"
            ? ConfigFieldError("pipeline",
                               "a parallel job cannot contain another one")
            : (registry != nullptr ? registry->CheckConfig(*config)
                                   : absl::OkStatus());
    if (!checked.ok()) return WithContext(checked, source);
    Member member;
    member.name = spec.name().empty() ? config->run_name() : spec.name();
    if (!IsPlainName(member.name)) member.name = absl::StrCat("pipeline-", i);
    const std::string stem = member.name;
    for (int n = 2; names.count(member.name) > 0; ++n) {
      member.name = absl::StrCat(stem, "-", n);
    }
    names.insert(member.name);
    member.config = *std::move(config);
    members.push_back(std::move(member));
  }
  return members;
}

// A test metric from the member's metrics.json, or NaN.
double TestMetric(const std::string& run_dir, const std::string& metric) {
  absl::StatusOr<RunMetrics> metrics = ReadRunMetrics(run_dir);
  return metrics.ok() ? metrics->TestMetric(metric) : std::nan("");
}

std::string Number(double value, const char* format = "%.4f") {
  return std::isfinite(value) ? absl::StrFormat(format, value) : "-";
}

class ParallelPipeline : public Pipeline {
 public:
  ParallelPipeline(PipelineContext context, ParallelPipelineConfig parallel,
                   std::vector<Member> members)
      : context_(std::move(context)),
        parallel_(std::move(parallel)),
        members_(std::move(members)) {}

  absl::Status Run() override {
    const std::string dir = context_.run_dir + "/pipelines";
    RETURN_IF_ERROR(MakeDirectories(dir));
    const ChildRunBudget budget =
        PlanChildRuns(parallel_.workers(), parallel_.threads_per_pipeline(),
                      context_.num_threads);
    const int workers = budget.concurrent;
    const int threads = budget.threads;
    LOG(INFO) << absl::StrFormat(
        "parallel: %d pipelines, %d at once with %d threads each",
        members_.size(), workers, threads);
    ChildPool pool(workers);
    for (const Member& member : members_) {
      const std::string config_path = dir + "/" + member.name + ".json";
      RETURN_IF_ERROR(
          WriteFileAtomically(config_path, RunConfigToJson(member.config)));
      ChildRun run{member.name, RunDirOf(member)};
      run.config_path = config_path;
      run.threads = threads;
      run.timeout_seconds = parallel_.timeout_seconds();
      // Resumed as a whole: each member continues from its checkpoint or
      // its records, starts if it never did, and is left alone if done.
      if (context_.resuming) run.resume = "auto";
      ASSIGN_OR_RETURN(ChildJob job, MakeChildRunJob(run, *context_.registry));
      pool.Add(std::move(job));
    }
    const bool terminal = isatty(STDERR_FILENO);
    std::vector<std::string> shown(members_.size());
    bool drawn = false;
    pool.Run([&](ChildPool& p) {
      std::vector<std::string> lines;
      for (int i = 0; i < p.size(); ++i) lines.push_back(StatusLine(p, i));
      if (terminal) {
        // Redraw the block of status lines in place.
        std::string block =
            drawn ? absl::StrFormat("\033[%dA", lines.size()) : std::string();
        for (const std::string& line : lines) {
          block += "\r\033[K" + line + "\n";
        }
        std::cerr << block << std::flush;
        drawn = true;
        return;
      }
      // Not a terminal (a log file, CI): a line only when a pipeline's
      // state or epoch changed, not for every tick of its clock.
      for (size_t i = 0; i < lines.size(); ++i) {
        const std::string without_clock = lines[i].substr(0, kClockColumn);
        if (without_clock != shown[i]) LOG(INFO) << lines[i];
        shown[i] = without_clock;
      }
    });
    PlotMembers();
    return Summarize(pool);
  }

 private:
  // The members that trained (a member may be a tune, with no epochs of its
  // own) on one chart, in plots/.
  void PlotMembers() {
    ComparisonPlot plot;
    plot.out_dir = RunFile(context_.run_dir, kPlotsDir);
    plot.title = "parallel pipelines";
    for (const Member& member : members_) {
      plot.run_dirs.push_back(RunDirOf(member));
    }
    CompareRunsOfPipeline(*context_.config, std::move(plot),
                          "the pipelines' comparison");
  }

  std::string RunDirOf(const Member& member) const {
    return context_.run_dir + "/pipelines/" + member.name;
  }

  // "mlp_a      running    epoch 3/10  val accuracy 0.8612   41.2 s"; the
  // clock starts at kClockColumn.
  static constexpr size_t kClockColumn = 20 + 1 + 10 + 1 + 40;
  std::string StatusLine(const ChildPool& pool, int index) const {
    const Member& member = members_[index];
    const ChildJobStatus& status = pool.status(index);
    std::string progress;
    if (status.state != ChildState::kQueued) {
      std::vector<EpochRecord> records = ReadEpochRecords(RunDirOf(member));
      if (!records.empty()) {
        const EpochRecord& last = records.back();
        progress = absl::StrFormat("epoch %d/%d", last.epoch,
                                   member.config.run_config().epochs());
        for (const char* metric : {"accuracy", "loss"}) {
          auto it = last.metrics.find(metric);
          if (it == last.metrics.end()) continue;
          absl::StrAppendFormat(&progress, "  %s %s %.4f", last.evaluated_on,
                                metric, it->second);
          break;
        }
      } else if (status.state == ChildState::kRunning) {
        progress = "starting";
      }
    }
    return absl::StrFormat("%-20s %-10s %-40s %7.1f s", member.name,
                           ChildStateName(status.state), progress,
                           pool.Seconds(index));
  }

  absl::Status Summarize(const ChildPool& pool) {
    std::string table = absl::StrFormat(
        "%-20s %-10s %5s %8s %7s %9s %9s  %s\n", "pipeline", "state", "exit",
        "seconds", "epochs", "test acc", "test loss", "run directory");
    google::protobuf::Value summary;
    auto* rows =
        (*summary.mutable_struct_value()->mutable_fields())["pipelines"]
            .mutable_list_value();
    std::vector<std::string> failed;
    for (int i = 0; i < pool.size(); ++i) {
      const Member& member = members_[i];
      const ChildJobStatus& status = pool.status(i);
      const std::string run_dir = RunDirOf(member);
      const double accuracy = TestMetric(run_dir, "accuracy");
      const double loss = TestMetric(run_dir, "loss");
      const size_t epochs = ReadEpochRecords(run_dir).size();
      absl::StrAppendFormat(&table, "%-20s %-10s %5d %8.1f %7d %9s %9s  %s\n",
                            member.name, ChildStateName(status.state),
                            status.exit_code, status.seconds, epochs,
                            Number(accuracy), Number(loss), run_dir);
      auto& row = *rows->add_values()->mutable_struct_value()->mutable_fields();
      row["name"].set_string_value(member.name);
      row["state"].set_string_value(ChildStateName(status.state));
      row["exit_code"].set_number_value(status.exit_code);
      row["seconds"].set_number_value(status.seconds);
      row["epochs"].set_number_value(static_cast<double>(epochs));
      row["run_dir"].set_string_value(run_dir);
      if (std::isfinite(accuracy))
        row["test_accuracy"].set_number_value(accuracy);
      if (std::isfinite(loss)) row["test_loss"].set_number_value(loss);
      if (status.state != ChildState::kSucceeded) {
        failed.push_back(absl::StrFormat(
            "%s (%s%s; see %s.out)", member.name, ChildStateName(status.state),
            status.exit_code > 0 ? absl::StrCat(", exit ", status.exit_code)
                                 : "",
            run_dir));
      }
    }
    LOG(INFO) << "summary (also in summary.json):\n" << table;
    RETURN_IF_ERROR(WriteFileAtomically(context_.run_dir + "/summary.json",
                                        FormatJson(summary)));
    if (pool.interrupted()) {
      std::vector<std::string> unfinished;
      for (int i = 0; i < pool.size(); ++i) {
        if (pool.status(i).state == ChildState::kInterrupted) {
          unfinished.push_back(members_[i].name);
        }
      }
      return StoppedBySignal(absl::StrCat(
          "during the parallel job: ", unfinished.size(), " of ", pool.size(),
          " pipelines stopped (", absl::StrJoin(unfinished, ", "),
          "); continue the job with --resume=", context_.run_dir));
    }
    if (!failed.empty()) {
      return absl::InternalError(
          absl::StrFormat("%d of %d pipelines failed: %s", failed.size(),
                          pool.size(), absl::StrJoin(failed, ", ")));
    }
    return absl::OkStatus();
  }

  PipelineContext context_;
  ParallelPipelineConfig parallel_;
  std::vector<Member> members_;
};

absl::Status ValidateParallelConfig(const RunConfig& config) {
  absl::StatusOr<ParallelPipelineConfig> parallel = ParseParallelConfig(config);
  if (!parallel.ok()) return parallel.status();
  return ResolveMembers(*parallel, nullptr).status();
}

absl::StatusOr<std::unique_ptr<Pipeline>> MakeParallelPipeline(
    const PipelineContext& context) {
  absl::StatusOr<DistributedConfig> distributed = DistributedFromEnvironment();
  if (!distributed.ok()) return distributed.status();
  if (distributed->enabled()) {
    return absl::FailedPreconditionError(
        "a parallel job runs as one process (every rank would run every "
        "member); start it without WORLD_SIZE or --nproc");
  }
  absl::StatusOr<ParallelPipelineConfig> parallel =
      ParseParallelConfig(*context.config);
  if (!parallel.ok()) {
    return WithContext(parallel.status(), context.config_source);
  }
  absl::StatusOr<std::vector<Member>> members =
      ResolveMembers(*parallel, context.registry);
  if (!members.ok()) {
    return WithContext(members.status(), context.config_source);
  }
  return std::make_unique<ParallelPipeline>(context, *std::move(parallel),
                                            *std::move(members));
}

}  // namespace

OUROBOROS_REGISTER_COMPOSITE_PIPELINE(
    "parallel",
    "Several pipelines (train runs, tunes) side by side, each its own "
    "process; status lines, then a summary table",
    MakeParallelPipeline, ValidateParallelConfig,
    SectionDefaultsOf<ParallelPipelineConfig>());

}  // namespace ouroboros::parallel
