// run_config.eval_every_steps (builtin_hooks.h).
#include <chrono>
#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "glog/logging.h"
#include "ouroboros/api/metrics.h"
#include "ouroboros/base/status_macros.h"
#include "ouroboros/hooks/builtin_hooks.h"
#include "ouroboros/runs/run_records.h"

namespace ouroboros {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsBetween(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

class StepEvaluation : public TrainerHook {
 public:
  explicit StepEvaluation(int64_t every_steps) : every_steps_(every_steps) {}

  absl::Status OnTrainBegin(const TrainingView& /*view*/) override {
    train_start_ = Clock::now();
    return absl::OkStatus();
  }

  absl::Status OnStepEnd(const TrainingView& view) override {
    if (view.step % every_steps_ != 0) return absl::OkStatus();
    const Clock::time_point evaluation_start = Clock::now();
    StepEvalRecord record;
    record.step = view.step;
    // 1-based, the epoch the step belongs to: as the console and
    // epochs.jsonl number them.
    record.epoch = view.epoch + 1;
    record.train_seconds =
        SecondsBetween(train_start_, evaluation_start) - evaluation_seconds_;
    std::string line = absl::StrFormat("step %d:", view.step);
    for (const auto& [split, out] :
         {std::pair<Split, std::map<std::string, double>*>{Split::kValidation,
                                                           &record.val},
          {Split::kTest, &record.test}}) {
      ASSIGN_OR_RETURN(*out, view.actions->EvaluateSplit(split));
      if (out->empty()) continue;
      const std::string name(SplitName(split));
      for (const auto& [metric, value] : *out) {
        view.actions->LogScalar(absl::StrCat("step_eval/", name, "/", metric),
                                value);
      }
      absl::StrAppend(&line, " ", name, ": ", FormatMetrics(*out), ";");
    }
    VLOG(1) << line;
    evaluation_seconds_ += SecondsBetween(evaluation_start, Clock::now());
    if (!view.writes_outputs) return absl::OkStatus();
    return AppendStepEvalRecord(view.run_dir, record);
  }

 private:
  const int64_t every_steps_;
  // When this process's training began, and the time its step evaluations
  // took since: evals.jsonl's train_seconds leaves them out.
  Clock::time_point train_start_ = Clock::now();
  double evaluation_seconds_ = 0;
};

}  // namespace

std::unique_ptr<TrainerHook> MakeStepEvaluation(int64_t every_steps) {
  return std::make_unique<StepEvaluation>(every_steps);
}

}  // namespace ouroboros
