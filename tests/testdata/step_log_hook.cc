// A Trainer hook for the end-to-end tests: "step_log" writes every boundary
// it sees to <run_dir>/hook_log.txt (with each epoch's evaluation) and
// reports the weights' sum of squares after every epoch. config:
// {"every": N} logs every N-th step (default 1); {"stop_at_step": S} ends
// the run after step S through RunActions, as a plugin's own early
// stopping would.
#include <torch/nn/module.h>

#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "ouroboros/api/plugin_api.h"
#include "ouroboros/base/errors.h"

namespace {

using ::ouroboros::TrainingView;

absl::Status ValidateStepLog(const google::protobuf::Struct& section,
                             absl::string_view path,
                             const ouroboros::RunConfig& /*config*/) {
  for (const auto& [key, value] : section.fields()) {
    if (key != "every" && key != "stop_at_step") {
      return ouroboros::ConfigFieldError(absl::StrCat(path, ".", key),
                                         "unknown field");
    }
    if (!value.has_number_value() || value.number_value() < 1) {
      return ouroboros::ConfigFieldError(
          absl::StrCat(path, ".", key),
          absl::StrCat("must be an integer >= 1 (got ", value.number_value(),
                       ")"));
    }
  }
  return absl::OkStatus();
}

class StepLog : public ouroboros::TrainerHook {
 public:
  StepLog(int every, int stop_at_step, std::string path)
      : every_(every), stop_at_step_(stop_at_step), path_(std::move(path)) {}

  absl::Status OnTrainBegin(const TrainingView& view) override {
    return Write(absl::StrCat("begin step=", view.step));
  }
  absl::Status OnStepEnd(const TrainingView& view) override {
    if (view.step == stop_at_step_) {
      view.actions->EndRunEarly(
          absl::StrCat("step_log: asked to stop at step ", view.step));
    }
    if (view.step % every_ != 0) return absl::OkStatus();
    return Write(absl::StrCat("step ", view.step));
  }
  absl::Status OnEpochEnd(const TrainingView& view,
                          std::map<std::string, double>* metrics) override {
    double sum_sq = 0;
    for (const at::Tensor& p : view.module->parameters()) {
      sum_sq += p.detach().pow(2).sum().item<double>();
    }
    (*metrics)["sum_sq"] = sum_sq;
    return Write(absl::StrCat("epoch ", view.epoch));
  }
  absl::Status OnEvaluation(
      const TrainingView& view,
      const ouroboros::EpochEvaluation& evaluation) override {
    return Write(absl::StrCat("evaluation ", view.epoch, " ",
                              ouroboros::SplitName(evaluation.split), " of ",
                              evaluation.metrics.size(), " metrics",
                              evaluation.new_best ? ", new best" : ""));
  }
  absl::Status OnTrainEnd(const TrainingView& view) override {
    return Write(absl::StrCat("end step=", view.step));
  }

 private:
  absl::Status Write(const std::string& line) {
    std::ofstream(path_, std::ios::app) << line << "\n";
    return absl::OkStatus();
  }
  int every_;
  int stop_at_step_;  // 0: never
  std::string path_;
};

absl::StatusOr<std::unique_ptr<ouroboros::TrainerHook>> MakeStepLog(
    const ouroboros::HookContext& context) {
  const auto& fields = context.config->hooks(context.index).config().fields();
  const auto number_or = [&fields](const std::string& key, int otherwise) {
    auto found = fields.find(key);
    return found == fields.end()
               ? otherwise
               : static_cast<int>(found->second.number_value());
  };
  return std::make_unique<StepLog>(number_or("every", 1),
                                   number_or("stop_at_step", 0),
                                   context.run_dir + "/hook_log.txt");
}

}  // namespace

OUROBOROS_REGISTER_HOOK("step_log", "Logs the Trainer's boundaries (tests)",
                        MakeStepLog, ValidateStepLog, nullptr);
