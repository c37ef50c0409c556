#include "ouroboros/cli/run_start.h"

#include <filesystem>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ouroboros/api/registry.h"
#include "ouroboros/config/config.h"
#include "ouroboros/distributed/distributed.h"
#include "ouroboros/runs/run_layout.h"
#include "ouroboros/runs/run_metrics.h"

namespace ouroboros {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

namespace fs = std::filesystem;

// A fresh directory for one test (removed first if an earlier run left it).
std::string FreshDir(const std::string& name) {
  const std::string dir = testing::TempDir() + "/run_start_test/" + name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// A config whose core sections are valid; the names are of no plugin.
constexpr char kConfig[] =
    "{\"model\": \"m\", \"seed\": 1, \"data_config\": {\"dataset\": "
    "\"d\"}, \"optim_config\": {\"name\": \"o\", \"lr\": 0.1}, "
    "\"run_config\": {\"epochs\": 1, \"batch_size\": 1}}";

void WriteFile(const std::string& path, const std::string& text) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path) << text;
}

// A run directory with a config.json and, if asked, a step checkpoint (the
// plan only looks at the names).
std::string RunDirWith(const std::string& name, bool checkpoint) {
  const std::string dir = FreshDir(name);
  WriteFile(RunFile(dir, kConfigFile), "{\"seed\": 1}");
  if (checkpoint) {
    WriteFile(CheckpointFile(dir, CheckpointFileName(20)), "");
    WriteFile(CheckpointFile(dir, CheckpointFileName(10)), "");
  }
  return dir;
}

TEST(PlanResumeTest, ANewRunReadsItsConfigFlag) {
  StartOptions options;
  options.config_path = "configs/mlp.json";
  absl::StatusOr<ResumePlan> plan = PlanResume(options);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->config_path, "configs/mlp.json");
  EXPECT_TRUE(plan->run_dir.empty());
  EXPECT_TRUE(plan->checkpoint.empty());
}

TEST(PlanResumeTest, ContinuesTheNewestCheckpointWithItsSavedConfig) {
  const std::string dir = RunDirWith("resume", /*checkpoint=*/true);
  StartOptions options;
  options.resume = dir;
  absl::StatusOr<ResumePlan> plan = PlanResume(options);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->checkpoint, CheckpointFile(dir, CheckpointFileName(20)));
  EXPECT_EQ(plan->run_dir, dir);
  EXPECT_EQ(plan->config_path, CheckpointFile(dir, kConfigFile));
}

TEST(PlanResumeTest, ARunWithoutCheckpointsIsLeftToItsPipeline) {
  const std::string dir = RunDirWith("no_checkpoint", /*checkpoint=*/false);
  StartOptions options;
  options.resume = dir;
  absl::StatusOr<ResumePlan> plan = PlanResume(options);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_TRUE(plan->checkpoint.empty());
  EXPECT_EQ(plan->run_dir, dir);
  EXPECT_EQ(plan->config_path, RunFile(dir, kConfigFile));
}

TEST(PlanResumeTest, RefusesWhatItCannotContinue) {
  StartOptions options;
  options.resume = FreshDir("empty");
  EXPECT_THAT(std::string(PlanResume(options).status().message()),
              StartsWith("--resume: "));
  options.run_dir = "/elsewhere";
  EXPECT_THAT(std::string(PlanResume(options).status().message()),
              HasSubstr("drop --run_dir"));
  options.resume = "auto";
  options.run_dir = "";
  EXPECT_THAT(std::string(PlanResume(options).status().message()),
              HasSubstr("--resume=auto needs --run_dir=DIR"));
}

TEST(PlanResumeTest, AutoContinuesACheckpointOrStartsOver) {
  StartOptions options;
  options.resume = "auto";
  options.config_path = "my.json";
  options.run_dir = RunDirWith("auto_checkpoint", /*checkpoint=*/true);
  absl::StatusOr<ResumePlan> plan = PlanResume(options);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_TRUE(plan->automatic);
  EXPECT_EQ(plan->run_dir, options.run_dir);
  // The command's config, which must match the checkpoint's.
  EXPECT_EQ(plan->config_path, "my.json");
  EXPECT_EQ(plan->saved_config, CheckpointFile(options.run_dir, kConfigFile));

  options.run_dir = RunDirWith("auto_earlier", /*checkpoint=*/false);
  plan = PlanResume(options);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_TRUE(plan->run_dir.empty());
  EXPECT_TRUE(plan->earlier_attempt);

  options.run_dir = FreshDir("auto_new");
  plan = PlanResume(options);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_TRUE(plan->run_dir.empty());
  EXPECT_FALSE(plan->earlier_attempt);
}

TEST(PrepareRunDirTest, CreatesANewRunUnderItsName) {
  StartOptions options;
  options.runs_root = FreshDir("root");
  RunConfig config;
  config.set_run_name("named");
  absl::StatusOr<std::string> dir =
      PrepareRunDir(options, ResumePlan(), config, /*writer=*/true);
  ASSERT_TRUE(dir.ok()) << dir.status();
  EXPECT_THAT(*dir, StartsWith(options.runs_root + "/named/"));
  EXPECT_TRUE(fs::is_directory(*dir));
}

TEST(PrepareRunDirTest, ARankOtherThanZeroNeedsRankZerosDirectory) {
  EXPECT_THAT(
      std::string(PrepareRunDir(StartOptions(), ResumePlan(), RunConfig(),
                                /*writer=*/false)
                      .status()
                      .message()),
      HasSubstr("a rank other than 0 needs --run_dir"));
}

TEST(PrepareRunDirTest, AutoRestartsOnlyInARunDirectory) {
  StartOptions options;
  ResumePlan plan;
  plan.automatic = true;
  options.run_dir = FreshDir("restart_stray");
  WriteFile(options.run_dir + "/notes.txt", "mine");
  EXPECT_THAT(
      std::string(
          PrepareRunDir(options, plan, RunConfig(), true).status().message()),
      HasSubstr("not empty and not a run directory"));
  // What an attempt stopped before its config.json leaves.
  options.run_dir = FreshDir("restart_early");
  WriteFile(RunFile(options.run_dir, kLogFile), "started");
  EXPECT_EQ(*PrepareRunDir(options, plan, RunConfig(), true), options.run_dir);
}

TEST(FinishedRunTest, SaysSoOnlyWhenTheRunReachedItsEnd) {
  const std::string dir = FreshDir("finished");
  RunConfig config;
  config.mutable_run_config()->set_epochs(3);
  EXPECT_FALSE(FinishedRun(dir, config).has_value());  // no metrics.json
  RunMetrics metrics;
  metrics.epochs = 2;
  metrics.steps = 20;
  ASSERT_TRUE(WriteRunMetrics(dir, metrics).ok());
  EXPECT_FALSE(FinishedRun(dir, config).has_value());
  metrics.epochs = 3;
  ASSERT_TRUE(WriteRunMetrics(dir, metrics).ok());
  EXPECT_THAT(FinishedRun(dir, config).value_or(""),
              HasSubstr("the run is finished (3 epochs, 20 steps"));
  // Early stopping: finished unless more patience is asked for.
  metrics.epochs = 2;
  metrics.early_stopping = EarlyStoppingRecord{true, "loss", 2, 0, 0.5};
  ASSERT_TRUE(WriteRunMetrics(dir, metrics).ok());
  config.mutable_score_config()->set_patience(2);
  EXPECT_TRUE(FinishedRun(dir, config).has_value());
  config.mutable_score_config()->set_patience(4);
  EXPECT_FALSE(FinishedRun(dir, config).has_value());
}

TEST(CheckSameConfigTest, NamesTheFirstDifference) {
  const std::string saved = FreshDir("same_config") + "/config.json";
  WriteFile(saved, kConfig);
  PluginRegistry registry;
  // As main has it: resolved, with the plugins' defaults filled in.
  absl::StatusOr<RunConfig> same = LoadRunConfigFile(saved, {});
  ASSERT_TRUE(same.ok()) << same.status();
  ASSERT_TRUE(registry.FillDefaults(&*same).ok());
  EXPECT_TRUE(CheckSameConfig(*same, saved, registry).ok());
  absl::StatusOr<RunConfig> other = LoadRunConfigFile(saved, {"seed=2"});
  ASSERT_TRUE(other.ok()) << other.status();
  ASSERT_TRUE(registry.FillDefaults(&*other).ok());
  const absl::Status refused = CheckSameConfig(*other, saved, registry);
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.message()),
              HasSubstr("saved '\"seed\": 1', asked '\"seed\": 2'"));
}

TEST(ResolveStartConfigTest, AnErrorNamesTheFlagOrTheFile) {
  const std::string path = FreshDir("resolve") + "/c.json";
  WriteFile(path, kConfig);
  ResumePlan plan;
  plan.config_path = path;
  PluginRegistry registry;  // knows no pipeline
  StartOptions options;
  EXPECT_THAT(
      std::string(
          ResolveStartConfig(options, plan, registry).status().message()),
      StartsWith(path + ": pipeline: "));
  options.pipeline = "nope";
  EXPECT_THAT(
      std::string(
          ResolveStartConfig(options, plan, registry).status().message()),
      StartsWith("--pipeline=nope: "));
}

TEST(DescribeRankTest, SaysWhereARestartedRankContinues) {
  DistributedConfig distributed;
  distributed.rank = 1;
  distributed.world_size = 2;
  distributed.local_rank = 1;
  distributed.local_world_size = 2;
  EXPECT_EQ(DescribeRank(distributed, ResumePlan()),
            "rank 1 of 2 (local rank 1 of 2 on node 0)");
  distributed.restart_count = 1;
  ResumePlan plan;
  plan.run_dir = "/r";
  plan.checkpoint = "/r/checkpoints/step-10.ckpt";
  EXPECT_THAT(DescribeRank(distributed, plan),
              HasSubstr("torchrun restart 1: continuing from /r/checkpoints"));
}

}  // namespace
}  // namespace ouroboros
