#include "ouroboros/distributed/child_run.h"

#include <torch/optim/optimizer.h>

#include <algorithm>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "ouroboros/api/registry.h"
#include "ouroboros/base/threads.h"

namespace ouroboros {
namespace {

bool Has(const std::vector<std::string>& argv, const std::string& flag) {
  return std::find(argv.begin(), argv.end(), flag) != argv.end();
}

bool HasPrefix(const std::vector<std::string>& argv,
               const std::string& prefix) {
  return std::any_of(argv.begin(), argv.end(), [&](const std::string& a) {
    return a.rfind(prefix, 0) == 0;
  });
}

OptimizerEntry OptimizerFrom(const std::string& source) {
  return OptimizerEntry{
      "opt",
      "a test optimizer",
      [](const OptimizerContext&)
          -> absl::StatusOr<std::unique_ptr<torch::optim::Optimizer>> {
        return absl::UnimplementedError("test");
      },
      nullptr,
      nullptr,
      source};
}

TEST(ChildRunTest, BudgetSharesTheCoresUnlessTold) {
  const int cores =
      static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  ChildRunBudget budget = PlanChildRuns(0, 0, cores);
  EXPECT_EQ(budget.concurrent, cores);
  EXPECT_EQ(budget.threads, 1);
  budget = PlanChildRuns(1, 0, cores);
  EXPECT_EQ(budget.concurrent, 1);
  EXPECT_EQ(budget.threads, cores);
  // More runs than cores: still one thread each, never zero.
  budget = PlanChildRuns(cores + 3, 0, cores);
  EXPECT_EQ(budget.threads, 1);
  // What the config says wins, even past the cores.
  budget = PlanChildRuns(2, 4, 1);
  EXPECT_EQ(budget.concurrent, 2);
  EXPECT_EQ(budget.threads, 4);
}

TEST(ChildRunTest, AChildRunsNoWiderThanTheProbeFoundWorthIt) {
  // The start-up probe (or --threads) gave this process one thread: a run
  // alone still gets one, whatever the cores.
  EXPECT_EQ(PlanChildRuns(1, 0, 1).threads, 1);
  EXPECT_EQ(PlanChildRuns(1, 0, 0).threads, 1);  // never zero
  const int cores = CoresPerProcess(1);
  EXPECT_EQ(PlanChildRuns(1, 0, cores + 8).threads, cores);
}

TEST(ChildRunTest, NewRunGetsItsConfigRunDirAndThreads) {
  PluginRegistry registry;
  ChildRun run{"trial-003", "/runs/tune/trials/trial-003"};
  run.config_path = "/runs/tune/trials/trial-003.json";
  run.threads = 3;
  run.timeout_seconds = 60;
  absl::StatusOr<ChildJob> job = MakeChildRunJob(run, registry);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->name, "trial-003");
  EXPECT_EQ(job->output_path, "/runs/tune/trials/trial-003.out");
  EXPECT_EQ(job->timeout_seconds, 60);
  ASSERT_FALSE(job->argv.empty());
  // This very program, started again.
  EXPECT_EQ(job->argv[0], *SelfExecutable());
  EXPECT_TRUE(Has(job->argv, "--config=/runs/tune/trials/trial-003.json"));
  EXPECT_TRUE(Has(job->argv, "--run_dir=/runs/tune/trials/trial-003"));
  EXPECT_TRUE(Has(job->argv, "--threads=3"));
  EXPECT_FALSE(HasPrefix(job->argv, "--resume"));
  // No plugins registered from files: no --plugin_dir.
  EXPECT_FALSE(HasPrefix(job->argv, "--plugin_dir"));
}

TEST(ChildRunTest, ResumedRunsKeepTheirFlagsAndLoadOurPlugins) {
  PluginRegistry registry;
  ASSERT_TRUE(registry.Register(OptimizerFrom("/opt/plugins/libopt.so")).ok());
  ChildRun from_checkpoint{"trial-001", "/runs/t/trial-001"};
  from_checkpoint.resume = "/runs/t/trial-001";
  absl::StatusOr<ChildJob> job = MakeChildRunJob(from_checkpoint, registry);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_TRUE(Has(job->argv, "--resume=/runs/t/trial-001"));
  // Resumed from the run directory alone: its saved config.
  EXPECT_FALSE(HasPrefix(job->argv, "--config"));
  EXPECT_FALSE(HasPrefix(job->argv, "--run_dir"));
  EXPECT_TRUE(Has(job->argv, "--plugin_dir=/opt/plugins"));

  ChildRun member{"mlp_a", "/runs/p/pipelines/mlp_a"};
  member.config_path = "/runs/p/pipelines/mlp_a.json";
  member.resume = "auto";
  job = MakeChildRunJob(member, registry);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_TRUE(Has(job->argv, "--config=/runs/p/pipelines/mlp_a.json"));
  EXPECT_TRUE(Has(job->argv, "--run_dir=/runs/p/pipelines/mlp_a"));
  EXPECT_TRUE(Has(job->argv, "--resume=auto"));
}

// A child is never a rank of this job: torchrun's variables are unset.
TEST(ChildRunTest, ChildIsNotARankOfThisJob) {
  PluginRegistry registry;
  absl::StatusOr<ChildJob> job =
      MakeChildRunJob(ChildRun{"final", "/runs/t/final"}, registry);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->environment, WithoutDistributedEnvironment());
  EXPECT_TRUE(Has(job->environment, "RANK"));
  EXPECT_TRUE(Has(job->environment, "WORLD_SIZE"));
}

}  // namespace
}  // namespace ouroboros
