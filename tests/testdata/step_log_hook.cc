// A Trainer hook for the end-to-end tests: "step_log" writes every boundary
// it sees to <run_dir>/hook_log.txt and reports the weights' sum of squares
// after every epoch. config: {"every": N} logs every N-th step (default 1).
#include <torch/nn/module.h>

#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "ouroboros/errors.h"
#include "ouroboros/plugin_api.h"

namespace {

using ::ouroboros::TrainingView;

absl::Status ValidateStepLog(const google::protobuf::Struct& section,
                             absl::string_view path,
                             const ouroboros::RunConfig& /*config*/) {
  for (const auto& [key, value] : section.fields()) {
    if (key != "every") {
      return ouroboros::ConfigFieldError(absl::StrCat(path, ".", key),
                                         "unknown field");
    }
    if (!value.has_number_value() || value.number_value() < 1) {
      return ouroboros::ConfigFieldError(
          absl::StrCat(path, ".every"),
          absl::StrCat("must be an integer >= 1 (got ", value.number_value(),
                       ")"));
    }
  }
  return absl::OkStatus();
}

class StepLog : public ouroboros::TrainerHook {
 public:
  StepLog(int every, std::string path)
      : every_(every), path_(std::move(path)) {}

  absl::Status OnTrainBegin(const TrainingView& view) override {
    return Write(absl::StrCat("begin step=", view.step));
  }
  absl::Status OnStepEnd(const TrainingView& view) override {
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
  absl::Status OnTrainEnd(const TrainingView& view) override {
    return Write(absl::StrCat("end step=", view.step));
  }

 private:
  absl::Status Write(const std::string& line) {
    std::ofstream(path_, std::ios::app) << line << "\n";
    return absl::OkStatus();
  }
  int every_;
  std::string path_;
};

absl::StatusOr<std::unique_ptr<ouroboros::TrainerHook>> MakeStepLog(
    const ouroboros::HookContext& context) {
  const auto& fields = context.config->hooks(context.index).config().fields();
  auto every = fields.find("every");
  return std::make_unique<StepLog>(
      every == fields.end() ? 1
                            : static_cast<int>(every->second.number_value()),
      context.run_dir + "/hook_log.txt");
}

}  // namespace

OUROBOROS_REGISTER_HOOK("step_log", "Logs the Trainer's boundaries (tests)",
                        MakeStepLog, ValidateStepLog, nullptr);
