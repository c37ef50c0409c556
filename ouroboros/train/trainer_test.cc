// The Trainer in this process, with a tiny model, the synthetic data source
// and SGD registered by the test itself: no main, no plugin .so, no child
// process. tests/main_test.cc covers the same Trainer through the binary.
#include "ouroboros/train/trainer.h"

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ouroboros/api/data.h"
#include "ouroboros/api/registry.h"
#include "ouroboros/config/config.h"
#include "ouroboros/runs/run_metrics.h"
#include "ouroboros/runs/run_records.h"
#include "ouroboros/train/resume_check.h"

namespace ouroboros {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Logistic regression whose loss turns NaN from call `nan_from_call` on
// (0: never), to see the Trainer refuse a non-finite loss.
class TinyLinear : public Model {
 public:
  TinyLinear(int64_t features, int64_t classes, int nan_from_call)
      : nan_from_call_(nan_from_call) {
    linear_ = module_.register_module(
        "linear",
        torch::nn::Linear(torch::nn::LinearOptions(features, classes)));
  }
  torch::nn::Module& module() override { return module_; }
  at::Tensor Forward(const at::Tensor& inputs) override {
    return linear_->forward(inputs.flatten(1));
  }
  at::Tensor Loss(const at::Tensor& outputs,
                  const at::Tensor& targets) override {
    at::Tensor loss = Model::Loss(outputs, targets);
    ++calls_;
    if (nan_from_call_ > 0 && calls_ >= nan_from_call_) {
      return loss * std::nan("");
    }
    return loss;
  }

 private:
  torch::nn::Module module_;
  torch::nn::Linear linear_{nullptr};
  int nan_from_call_;
  int calls_ = 0;
};

// What a hook sees, in order, as one line per boundary.
std::vector<std::string>& HookEvents() {
  static auto* events = new std::vector<std::string>;
  return *events;
}

class EventRecorder : public TrainerHook {
 public:
  explicit EventRecorder(int64_t stop_at_step) : stop_at_step_(stop_at_step) {}
  absl::Status OnTrainBegin(const TrainingView& view) override {
    HookEvents().push_back(absl::StrCat("begin ", view.step));
    return absl::OkStatus();
  }
  absl::Status OnStepEnd(const TrainingView& view) override {
    if (view.step == stop_at_step_) {
      view.actions->EndRunEarly(absl::StrCat("asked at step ", view.step));
    }
    return absl::OkStatus();
  }
  absl::Status OnEpochEnd(const TrainingView& view,
                          std::map<std::string, double>* /*metrics*/) override {
    HookEvents().push_back(absl::StrCat("epoch ", view.epoch));
    return absl::OkStatus();
  }
  absl::Status OnEvaluation(const TrainingView& view,
                            const EpochEvaluation& evaluation) override {
    HookEvents().push_back(absl::StrCat("evaluation ", view.epoch, " ",
                                        SplitName(evaluation.split),
                                        evaluation.new_best ? " best" : ""));
    return absl::OkStatus();
  }
  absl::Status OnTrainEnd(const TrainingView& view) override {
    HookEvents().push_back(absl::StrCat("end ", view.step));
    return absl::OkStatus();
  }

 private:
  int64_t stop_at_step_;
};

PluginRegistry& Registry() {
  static PluginRegistry* registry = [] {
    auto* r = new PluginRegistry;
    EXPECT_TRUE(RegisterBuiltinDataSources(*r).ok());
    for (const auto& [name, nan_from_call] :
         std::vector<std::pair<std::string, int>>{{"tiny_linear", 0},
                                                  {"tiny_nan_at_4", 4}}) {
      ModelEntry model;
      model.name = name;
      model.source = "test";
      const int nan_call = nan_from_call;
      model.factory = [nan_call](const ModelContext& context)
          -> absl::StatusOr<std::unique_ptr<Model>> {
        return std::make_unique<TinyLinear>(context.data.input_shape.back(),
                                            context.data.num_classes, nan_call);
      };
      EXPECT_TRUE(r->Register(std::move(model)).ok());
    }
    EXPECT_TRUE(RegisterTrainerStandIns(*r).ok());
    HookEntry recorder;
    recorder.name = "recorder";
    recorder.source = "test";
    recorder.factory = [](const HookContext& context)
        -> absl::StatusOr<std::unique_ptr<TrainerHook>> {
      const auto& fields =
          context.config->hooks(context.index).config().fields();
      auto stop = fields.find("stop_at_step");
      return std::make_unique<EventRecorder>(
          stop == fields.end()
              ? -1
              : static_cast<int64_t>(stop->second.number_value()));
    };
    EXPECT_TRUE(r->Register(std::move(recorder)).ok());
    return r;
  }();
  return *registry;
}

constexpr char kTinyRun[] = R"({
  "model": "tiny_linear",
  "seed": 3,
  "data_config": {
    "dataset": "synthetic",
    "synthetic": {"num_samples": 200, "num_features": 4, "num_classes": 2,
                  "noise": 0.3},
    "split": {"val_fraction": 0.2}
  },
  "optim_config": {"name": "sgd", "lr": 0.1},
  "run_config": {"epochs": 3, "batch_size": 16, "checkpoint_every_steps": 5,
                 "skip_plots": true},
  "score_config": {"metrics": ["loss", "accuracy"], "monitor": "accuracy"}
})";

RunConfig TinyConfig(const std::vector<std::string>& overrides = {}) {
  absl::StatusOr<RunConfig> config =
      ParseRunConfig(kTinyRun, "trainer_test", overrides);
  EXPECT_TRUE(config.ok()) << config.status();
  config->set_pipeline(kDefaultPipeline);
  EXPECT_TRUE(Registry().CheckConfig(*config).ok());
  return *config;
}

std::string FreshDir(const std::string& name) {
  const std::string dir = absl::StrCat(std::getenv("TEST_TMPDIR"), "/", name);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

absl::StatusOr<TrainResult> RunTrainer(const RunConfig& config,
                                       const std::string& run_dir) {
  PipelineContext context;
  context.config = &config;
  context.config_source = "trainer_test";
  context.run_dir = run_dir;
  context.registry = &Registry();
  Trainer trainer(context);
  return trainer.Run();
}

TEST(TrainerTest, LearnsAndLeavesARecordOfEveryEpoch) {
  const std::string dir = FreshDir("learns");
  absl::StatusOr<TrainResult> result = RunTrainer(TinyConfig(), dir);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_GT(result->test.at("accuracy"), 0.8);  // chance: 0.5

  const std::vector<EpochRecord> epochs = ReadEpochRecords(dir);
  ASSERT_EQ(epochs.size(), 3u);
  for (size_t i = 0; i < epochs.size(); ++i) {
    EXPECT_EQ(epochs[i].epoch, static_cast<int64_t>(i) + 1);
    EXPECT_EQ(epochs[i].evaluated_on, "val");
    EXPECT_TRUE(epochs[i].metrics.count("accuracy"));
  }
  // 200 samples, a fifth held out for test and a fifth of the rest for
  // validation: 128 training samples in batches of 16, 8 steps an epoch.
  EXPECT_EQ(epochs.back().step, 24);
  EXPECT_LT(epochs.back().train_loss, epochs.front().train_loss);

  absl::StatusOr<RunMetrics> metrics = ReadRunMetrics(dir);
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  EXPECT_EQ(metrics->epochs, 3);
  EXPECT_EQ(metrics->steps, 24);
  EXPECT_EQ(metrics->test.at("accuracy"), result->test.at("accuracy"));
  EXPECT_TRUE(std::filesystem::exists(metrics->final_checkpoint))
      << metrics->final_checkpoint;
}

TEST(TrainerTest, AHookSeesEveryBoundaryInItsOrder) {
  HookEvents().clear();
  RunConfig config = TinyConfig({"run_config.epochs=2"});
  config.add_hooks()->set_name("recorder");
  absl::StatusOr<TrainResult> result =
      RunTrainer(config, FreshDir("boundaries"));
  ASSERT_TRUE(result.ok()) << result.status();
  // The epoch's end comes before its evaluation (view.epoch counts the
  // epochs finished), and the first evaluation is always the best so far.
  EXPECT_THAT(HookEvents(),
              ElementsAre("begin 0", "epoch 1", "evaluation 1 val best",
                          "epoch 2", HasSubstr("evaluation 2 val"), "end 16"));
}

TEST(TrainerTest, AHookEndsTheRunEarlyAndTheRunStillFinishes) {
  HookEvents().clear();
  RunConfig config = TinyConfig();
  HookConfig* hook = config.add_hooks();
  hook->set_name("recorder");
  (*hook->mutable_config()->mutable_fields())["stop_at_step"].set_number_value(
      13);
  const std::string dir = FreshDir("ends_early");
  absl::StatusOr<TrainResult> result = RunTrainer(config, dir);
  ASSERT_TRUE(result.ok()) << result.status();
  absl::StatusOr<RunMetrics> metrics = ReadRunMetrics(dir);
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  EXPECT_EQ(metrics->steps, 13);
  EXPECT_TRUE(metrics->test.count("accuracy"));
  EXPECT_EQ(HookEvents().back(), "end 13");
}

TEST(TrainerTest, ANonFiniteLossStopsTheRunNamingTheLastCheckpoint) {
  RunConfig config = TinyConfig();
  config.set_model("tiny_nan_at_4");
  // A checkpoint every two steps; the fourth loss is NaN.
  config.mutable_run_config()->set_checkpoint_every_steps(2);
  absl::StatusOr<TrainResult> result = RunTrainer(config, FreshDir("nan"));
  ASSERT_FALSE(result.ok());
  EXPECT_THAT(std::string(result.status().message()),
              HasSubstr("loss became nan at step 4"));
  EXPECT_THAT(std::string(result.status().message()),
              HasSubstr("step-000000002"));
}

TEST(TrainerTest, StoppedAndResumedEndsAsAnUninterruptedRun) {
  absl::Status exact =
      CheckResumeIsExact(TinyConfig(), Registry(), FreshDir("resume"), 13);
  EXPECT_TRUE(exact.ok()) << exact;
}

}  // namespace
}  // namespace ouroboros
