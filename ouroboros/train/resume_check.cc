#include "ouroboros/train/resume_check.h"

#include <ATen/ATen.h>
#include <torch/optim/adam.h>
#include <torch/optim/sgd.h>
#include <torch/serialize.h>

#include <atomic>
#include <csignal>
#include <filesystem>
#include <map>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "ouroboros/api/interfaces.h"
#include "ouroboros/base/errors.h"
#include "ouroboros/base/files.h"
#include "ouroboros/base/status_macros.h"
#include "ouroboros/base/stop_signal.h"
#include "ouroboros/runs/checkpoint.h"
#include "ouroboros/train/trainer.h"

namespace ouroboros {
namespace {

constexpr char kStopHook[] = "resume_check_stop";

// The step after which the armed run stops; -1: none.
std::atomic<int64_t>& StopAfterStep() {
  static std::atomic<int64_t> step{-1};
  return step;
}

class StopAtStep : public TrainerHook {
 public:
  absl::Status OnStepEnd(const TrainingView& view) override {
    if (view.step == StopAfterStep().load()) RequestStop(SIGTERM);
    return absl::OkStatus();
  }
};

absl::Status RegisterStopHook(PluginRegistry& registry) {
  for (const HookEntry* entry : registry.HooksForEveryRun()) {
    if (entry->name == kStopHook) return absl::OkStatus();
  }
  HookEntry entry;
  entry.name = kStopHook;
  entry.description = "CheckResumeIsExact's stop after a given step";
  entry.factory =
      [](const HookContext&) -> absl::StatusOr<std::unique_ptr<TrainerHook>> {
    return std::make_unique<StopAtStep>();
  };
  entry.source = "resume_check";
  entry.in_every_run = true;
  return registry.Register(std::move(entry));
}

absl::StatusOr<TrainResult> Train(const RunConfig& config,
                                  const PluginRegistry& registry,
                                  const std::string& run_dir,
                                  const std::string& resume_from) {
  PipelineContext context;
  context.config = &config;
  context.config_source = "CheckResumeIsExact";
  context.run_dir = run_dir;
  context.registry = &registry;
  context.resuming = !resume_from.empty();
  context.resume_from = resume_from;
  Trainer trainer(context);
  return trainer.Run();
}

absl::StatusOr<std::map<std::string, at::Tensor>> Weights(
    const std::string& checkpoint) {
  const std::string path = WeightsPathFor(checkpoint);
  ASSIGN_OR_RETURN(const std::string bytes, ReadFileToString(path));
  std::map<std::string, at::Tensor> weights;
  RETURN_IF_ERROR(CallTorch("reading " + path, [&] {
    const std::vector<char> data(bytes.begin(), bytes.end());
    for (const auto& entry : torch::pickle_load(data).toGenericDict()) {
      weights[entry.key().toStringRef()] = entry.value().toTensor();
    }
  }));
  return weights;
}

absl::Status SameMetrics(const std::map<std::string, double>& whole,
                         const std::map<std::string, double>& resumed,
                         const char* split) {
  for (const auto& [name, value] : whole) {
    auto it = resumed.find(name);
    if (it == resumed.end() || !(it->second == value)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "first differing metric: ", split, " ", name, " ", value,
          " uninterrupted, ",
          it == resumed.end() ? "missing" : absl::StrCat(it->second),
          " resumed"));
    }
  }
  if (resumed.size() != whole.size()) {
    return absl::FailedPreconditionError(
        absl::StrCat("the resumed run has other ", split, " metrics"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status RegisterTrainerStandIns(PluginRegistry& registry) {
  OptimizerFactory adam = [](const OptimizerContext& context)
      -> absl::StatusOr<std::unique_ptr<torch::optim::Optimizer>> {
    return std::make_unique<torch::optim::Adam>(context.parameters,
                                                context.config->lr());
  };
  OptimizerFactory sgd = [](const OptimizerContext& context)
      -> absl::StatusOr<std::unique_ptr<torch::optim::Optimizer>> {
    return std::make_unique<torch::optim::SGD>(
        context.parameters, torch::optim::SGDOptions(context.config->lr()));
  };
  RETURN_IF_ERROR(registry.Register(
      OptimizerEntry{"adam", "", adam, nullptr, nullptr, "test"}));
  RETURN_IF_ERROR(registry.Register(
      OptimizerEntry{"sgd", "", sgd, nullptr, nullptr, "test"}));
  PipelineEntry train;
  train.name = kDefaultPipeline;
  train.source = "test";
  train.factory =
      [](const PipelineContext&) -> absl::StatusOr<std::unique_ptr<Pipeline>> {
    return nullptr;
  };
  return registry.Register(std::move(train));
}

absl::Status CheckResumeIsExact(const RunConfig& config,
                                PluginRegistry& registry,
                                const std::string& dir,
                                int64_t stop_after_step) {
  RETURN_IF_ERROR(RegisterStopHook(registry));
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  const std::string whole_dir = dir + "/whole";
  const std::string cut_dir = dir + "/cut";
  RETURN_IF_ERROR(MakeDirectories(whole_dir));
  RETURN_IF_ERROR(MakeDirectories(cut_dir));
  ASSIGN_OR_RETURN(const TrainResult whole,
                   Train(config, registry, whole_dir, ""));
  if (stop_after_step >= whole.position.step) {
    return absl::InvalidArgumentError(absl::StrCat(
        "stop_after_step ", stop_after_step, " is not inside the run (",
        whole.position.step, " steps)"));
  }
  StopAfterStep() = stop_after_step;
  absl::StatusOr<TrainResult> stopped = Train(config, registry, cut_dir, "");
  StopAfterStep() = -1;
  ClearStopRequest();
  if (stopped.ok() || !absl::IsCancelled(stopped.status())) {
    return absl::InternalError(absl::StrCat(
        "the run did not stop after step ", stop_after_step, ": ",
        stopped.ok() ? "it finished" : stopped.status().message()));
  }
  ASSIGN_OR_RETURN(const std::string checkpoint, FindCheckpoint(cut_dir));
  ASSIGN_OR_RETURN(const TrainResult resumed,
                   Train(config, registry, cut_dir, checkpoint));
  if (resumed.position.step != whole.position.step) {
    return absl::FailedPreconditionError(
        absl::StrCat("the resumed run ended at step ", resumed.position.step,
                     ", the uninterrupted one at ", whole.position.step));
  }
  ASSIGN_OR_RETURN(auto expected, Weights(whole.final_checkpoint));
  ASSIGN_OR_RETURN(auto got, Weights(resumed.final_checkpoint));
  for (const auto& [name, tensor] : expected) {
    auto it = got.find(name);
    if (it == got.end() || !at::equal(it->second, tensor)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "first differing tensor: '", name, "' (resumed after step ",
          stop_after_step, " against uninterrupted)"));
    }
  }
  RETURN_IF_ERROR(SameMetrics(whole.val, resumed.val, "val"));
  return SameMetrics(whole.test, resumed.test, "test");
}

}  // namespace ouroboros
