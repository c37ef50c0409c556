#include "ouroboros/runs/run_summary.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ouroboros {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

RunConfig TinyConfig() {
  RunConfig config;
  config.set_run_name("tiny");
  config.set_model("mlp");
  config.set_seed(5);
  config.mutable_optim_config()->set_name("adam");
  config.mutable_data_config()->set_dataset("synthetic");
  config.mutable_score_config()->set_monitor("accuracy");
  return config;
}

TEST(RunSummaryTest, OneLineForEachPartOfTheResult) {
  TrainResult result;
  result.position.epoch = 2;
  result.position.step = 24;
  result.val = {{"accuracy", 0.59375}, {"loss", 0.8835}};
  result.test = {{"accuracy", 0.65625}, {"loss", 0.8084}};
  result.best_metric = 0.59375;
  result.family_results = {"rho 0.01"};
  EXPECT_THAT(
      RunSummary(TinyConfig(), result, "/runs/tiny", 0.125),
      ElementsAre(
          "summary   tiny: model mlp, optimizer adam, data synthetic, seed 5",
          "  trained 2 epochs, 24 steps in 0.1 s",
          "  best    val accuracy 0.5938 (checkpoints/best.ckpt)",
          "  val     accuracy 0.5938, loss 0.8835 (last epoch)",
          "  test    accuracy 0.6562, loss 0.8084", "  result  rho 0.01",
          "  files   /runs/tiny: metrics.json, log.txt, epochs.jsonl, plots/, "
          "tensorboard/, checkpoints/"));
}

TEST(RunSummaryTest, SameMetricsOnBothSplitsGetOneLine) {
  TrainResult result;
  result.position.epoch = 1;
  result.stopped_early = true;
  result.val = {{"rho", 0.5}};
  result.test = result.val;
  const std::vector<std::string> lines =
      RunSummary(TinyConfig(), result, "d", 1);
  EXPECT_THAT(lines[1], HasSubstr("1 epoch, 0 steps in 1.0 s (stopped early)"));
  EXPECT_EQ(lines[2], "  best    val accuracy 0.0000 (checkpoints/best.ckpt)");
  EXPECT_EQ(lines[3], "  val and test  rho 0.5000 (the same on both splits)");
}

}  // namespace
}  // namespace ouroboros
