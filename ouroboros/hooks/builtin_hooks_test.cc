// The built-in hooks against a recording RunActions: no Trainer, no model.
#include "ouroboros/hooks/builtin_hooks.h"

#include <torch/nn/modules/linear.h>

#include <filesystem>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ouroboros/runs/run_records.h"

namespace ouroboros {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// What the hooks asked of the run, as strings in order.
class RecordingActions : public RunActions {
 public:
  absl::Status SaveStepCheckpoint() override {
    calls.push_back("step checkpoint");
    return absl::OkStatus();
  }
  absl::Status SaveNamedCheckpoint(const std::string& file_name) override {
    calls.push_back("checkpoint " + file_name);
    return absl::OkStatus();
  }
  absl::StatusOr<std::map<std::string, double>> EvaluateSplit(
      Split split) override {
    calls.push_back("evaluate " + std::string(SplitName(split)));
    if (split == Split::kTest && !has_test) {
      return std::map<std::string, double>();
    }
    return std::map<std::string, double>{{"loss", 0.25}};
  }
  void LogScalar(const std::string& tag, double /*value*/) override {
    calls.push_back("scalar " + tag);
  }
  void LogHistogram(const std::string& tag, const at::Tensor& values) override {
    calls.push_back("histogram " + tag + " of " +
                    std::to_string(values.numel()));
  }
  void EndRunEarly(const std::string& reason) override {
    calls.push_back("stop: " + reason);
  }

  std::vector<std::string> calls;
  bool has_test = true;
};

class BuiltinHooksTest : public ::testing::Test {
 protected:
  TrainingView View(int64_t step, int64_t epoch) {
    TrainingView view;
    view.step = step;
    view.epoch = epoch;
    view.run_dir = run_dir_;
    view.actions = &actions_;
    view.score = score_;
    return view;
  }

  RecordingActions actions_;
  ScoreRecord score_;
  std::string run_dir_ = ::testing::TempDir() + "/builtin_hooks_test";
};

TEST_F(BuiltinHooksTest, TheConfigEnablesEachHookInTheDefinedOrder) {
  RunConfig config;
  EXPECT_THAT(BuiltinHooks(config), IsEmpty());
  config.mutable_run_config()->set_eval_every_steps(5);
  config.mutable_run_config()->set_checkpoint_every_steps(5);
  config.mutable_run_config()->set_histogram_every_epochs(1);
  config.mutable_run_config()->set_checkpoint_every_epochs(1);
  config.mutable_score_config()->set_monitor("loss");
  config.mutable_score_config()->set_patience(2);
  std::vector<std::string> names;
  for (const NamedHook& hook : BuiltinHooks(config)) names.push_back(hook.name);
  EXPECT_THAT(names, ElementsAre("step_evaluation", "step_checkpoints",
                                 "best_checkpoint", "early_stopping",
                                 "weight_histograms", "epoch_checkpoints"));
  // Early stopping needs the patience, the best checkpoint only a monitor.
  config.mutable_score_config()->set_patience(0);
  names.clear();
  for (const NamedHook& hook : BuiltinHooks(config)) names.push_back(hook.name);
  EXPECT_THAT(names, ElementsAre("step_evaluation", "step_checkpoints",
                                 "best_checkpoint", "weight_histograms",
                                 "epoch_checkpoints"));
}

TEST_F(BuiltinHooksTest, StepCheckpointsEveryNSteps) {
  std::unique_ptr<TrainerHook> hook = MakeStepCheckpoints(3);
  for (int64_t step = 1; step <= 7; ++step) {
    ASSERT_TRUE(hook->OnStepEnd(View(step, 0)).ok());
  }
  EXPECT_THAT(actions_.calls,
              ElementsAre("step checkpoint", "step checkpoint"));
}

TEST_F(BuiltinHooksTest, EpochCheckpointsEveryNEpochs) {
  std::unique_ptr<TrainerHook> hook = MakeEpochCheckpoints(2);
  for (int64_t epoch = 1; epoch <= 5; ++epoch) {
    ASSERT_TRUE(hook->OnEvaluation(View(10 * epoch, epoch), {}).ok());
  }
  EXPECT_THAT(actions_.calls,
              ElementsAre("step checkpoint", "step checkpoint"));
}

TEST_F(BuiltinHooksTest, BestCheckpointOnlyAtANewBest) {
  ScoreConfig score;
  score.set_monitor("loss");
  std::unique_ptr<TrainerHook> hook = MakeBestCheckpoint(score);
  EpochEvaluation evaluation;
  ASSERT_TRUE(hook->OnEvaluation(View(10, 1), evaluation).ok());
  EXPECT_THAT(actions_.calls, IsEmpty());
  evaluation.new_best = true;
  ASSERT_TRUE(hook->OnEvaluation(View(20, 2), evaluation).ok());
  EXPECT_THAT(actions_.calls, ElementsAre("checkpoint best.ckpt"));
}

TEST_F(BuiltinHooksTest, EarlyStoppingOnceThePatienceRunsOut) {
  ScoreConfig score;
  score.set_monitor("accuracy");
  score.set_patience(2);
  std::unique_ptr<TrainerHook> hook = MakeEarlyStopping(score);
  score_.has_best = true;
  score_.best = 0.75;
  score_.epochs_without_improvement = 1;
  ASSERT_TRUE(hook->OnTrainBegin(View(10, 1)).ok());
  ASSERT_TRUE(hook->OnEvaluation(View(10, 1), {}).ok());
  EXPECT_THAT(actions_.calls, IsEmpty());
  score_.epochs_without_improvement = 2;
  ASSERT_TRUE(hook->OnEvaluation(View(30, 3), {}).ok());
  ASSERT_EQ(actions_.calls.size(), 1u);
  EXPECT_THAT(actions_.calls[0],
              HasSubstr("early stopping after epoch 3: accuracy did not "
                        "improve by more than 0 for 2 epochs (best 0.7500)"));
  // A run resumed after the patience ran out stops before its first step.
  actions_.calls.clear();
  ASSERT_TRUE(MakeEarlyStopping(score)->OnTrainBegin(View(30, 3)).ok());
  EXPECT_EQ(actions_.calls.size(), 1u);
}

TEST_F(BuiltinHooksTest, WeightHistogramsOfEveryParameter) {
  torch::nn::Linear linear(3, 2);
  std::unique_ptr<TrainerHook> hook = MakeWeightHistograms(2);
  TrainingView view = View(5, 1);
  view.module = linear.ptr().get();
  ASSERT_TRUE(hook->OnEvaluation(view, {}).ok());
  EXPECT_THAT(actions_.calls, IsEmpty());
  view.epoch = 2;
  ASSERT_TRUE(hook->OnEvaluation(view, {}).ok());
  EXPECT_THAT(actions_.calls, ElementsAre("histogram weights/weight of 6",
                                          "histogram weights/bias of 2"));
}

TEST_F(BuiltinHooksTest, StepEvaluationWritesEvalsJsonlOnTheWritingRank) {
  std::filesystem::remove_all(run_dir_);
  std::filesystem::create_directories(run_dir_);
  actions_.has_test = false;
  std::unique_ptr<TrainerHook> hook = MakeStepEvaluation(2);
  ASSERT_TRUE(hook->OnTrainBegin(View(0, 0)).ok());
  for (int64_t step = 1; step <= 4; ++step) {
    ASSERT_TRUE(hook->OnStepEnd(View(step, 0)).ok());
  }
  EXPECT_THAT(actions_.calls,
              ElementsAre("evaluate val", "scalar step_eval/val/loss",
                          "evaluate test", "evaluate val",
                          "scalar step_eval/val/loss", "evaluate test"));
  const std::vector<StepEvalRecord> records = ReadStepEvalRecords(run_dir_);
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0].step, 2);
  EXPECT_EQ(records[0].epoch, 1);
  EXPECT_GE(records[0].train_seconds, 0);
  EXPECT_DOUBLE_EQ(records[1].val.at("loss"), 0.25);
  EXPECT_THAT(records[1].test, IsEmpty());
  // Every other rank evaluates alike and writes nothing.
  std::filesystem::remove_all(run_dir_);
  std::filesystem::create_directories(run_dir_);
  TrainingView other_rank = View(6, 0);
  other_rank.writes_outputs = false;
  ASSERT_TRUE(hook->OnStepEnd(other_rank).ok());
  EXPECT_THAT(ReadStepEvalRecords(run_dir_), IsEmpty());
}

}  // namespace
}  // namespace ouroboros
