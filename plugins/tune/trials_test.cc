// The tune's trial store, reports and launcher, without processes.
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ouroboros/api/data.h"
#include "ouroboros/api/registry.h"
#include "ouroboros/base/json.h"
#include "ouroboros/config/config.h"
#include "ouroboros/train/resume_check.h"
#include "plugins/tune/search.h"
#include "plugins/tune/trial_launcher.h"
#include "plugins/tune/trial_reports.h"
#include "plugins/tune/trial_store.h"

namespace ouroboros::tune {
namespace {

using ::testing::HasSubstr;

constexpr char kTuneConfig[] = R"({
  "model": "tiny", "pipeline": "tune", "seed": 7, "run_name": "lr",
  "data_config": {"dataset": "synthetic",
                  "synthetic": {"num_samples": 64, "num_features": 4,
                                "num_classes": 2}},
  "optim_config": {"name": "adam", "lr": 0.01},
  "run_config": {"epochs": 5, "batch_size": 8},
  "score_config": {"monitor": "accuracy"},
  "pipeline_config": {"search": "grid", "trial_epochs": 2,
    "space": {"optim_config.lr": {"grid": [0.1, 0.01, 0.001]},
              "model_config.tag": {"grid": ["a,\"b\""]}}}})";

std::string TestDir(const std::string& name) {
  const std::string dir = std::string(std::getenv("TEST_TMPDIR")) + "/" + name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

struct Tune {
  RunConfig config;
  TunePipelineConfig tune;
  std::vector<TrialRecord> records;
};

Tune MakeTune() {
  Tune t;
  absl::StatusOr<RunConfig> config = ParseRunConfig(kTuneConfig, "tune.json");
  EXPECT_TRUE(config.ok()) << config.status();
  t.config = *config;
  absl::StatusOr<TunePipelineConfig> tune = ParseTuneConfig(t.config);
  EXPECT_TRUE(tune.ok()) << tune.status();
  t.tune = *tune;
  absl::StatusOr<std::vector<Trial>> trials = MakeTrials(t.tune, 7);
  EXPECT_TRUE(trials.ok()) << trials.status();
  t.records = NewTrialRecords(*trials);
  return t;
}

// Three trials: two succeeded (accuracy 0.8 then 0.9, and 0.95 with a NaN
// epoch), one failed at 0.99.
void Finish(std::vector<TrialRecord>* records) {
  (*records)[0].status.state = ChildState::kSucceeded;
  (*records)[0].history = {0.8, 0.9};
  (*records)[1].status.state = ChildState::kSucceeded;
  (*records)[1].history = {std::nan(""), 0.95};
  (*records)[1].status.seconds = 12.5;
  (*records)[2].status.state = ChildState::kFailed;
  (*records)[2].history = {0.99};
}

TEST(TrialStoreTest, TrialsAreNamedByIndex) {
  Tune t = MakeTune();
  ASSERT_EQ(t.records.size(), 3u);
  EXPECT_EQ(t.records[0].name, "trial-000");
  EXPECT_EQ(t.records[2].name, "trial-002");
}

TEST(TrialStoreTest, TheStoreRoundTripsWithItsNaNs) {
  Tune t = MakeTune();
  Finish(&t.records);
  const std::string dir = TestDir("store");
  ASSERT_TRUE(WriteTrialStore(dir, t.tune, t.records).ok());

  Tune resumed = MakeTune();
  ASSERT_TRUE(RestoreTrialStore(dir, &resumed.records).ok());
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(resumed.records[i].done);
    EXPECT_EQ(resumed.records[i].status.state, t.records[i].status.state);
  }
  EXPECT_TRUE(std::isnan(resumed.records[1].history[0]));
  EXPECT_EQ(resumed.records[1].history[1], 0.95);
  EXPECT_EQ(resumed.records[1].status.seconds, 12.5);
}

TEST(TrialStoreTest, AStoreOfAnotherSearchIsRefused) {
  Tune t = MakeTune();
  Finish(&t.records);
  const std::string dir = TestDir("changed");
  ASSERT_TRUE(WriteTrialStore(dir, t.tune, t.records).ok());
  Tune changed = MakeTune();
  changed.records[1].trial.params["optim_config.lr"] = "0.5";
  const absl::Status restored = RestoreTrialStore(dir, &changed.records);
  EXPECT_EQ(restored.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(restored.message()),
              HasSubstr("trials.json: trial-001 had optim_config.lr=0.01; the "
                        "config's search changed since"));
  // No store yet (killed before the first trial ended): nothing to restore.
  EXPECT_TRUE(RestoreTrialStore(TestDir("none"), &changed.records).ok());
}

TEST(TrialStoreTest, TheBestIsAFinishedTrialsLastFiniteValue) {
  Tune t = MakeTune();
  EXPECT_EQ(BestTrial(t.records, "max"), nullptr);
  Finish(&t.records);
  // trial-002 scored higher but failed.
  EXPECT_EQ(BestTrial(t.records, "max")->name, "trial-001");
  EXPECT_EQ(BestTrial(t.records, "min")->name, "trial-000");
}

TEST(TrialStoreTest, TheEarlyStoppingRuleSeesTheOtherTrials) {
  Tune t = MakeTune();
  t.tune.mutable_early_stopping()->set_method("median");
  t.tune.mutable_early_stopping()->set_min_trials(2);
  // Past the grace epoch, trial-002 is below the others' median.
  t.records[0].history = {0.9, 0.9};
  t.records[1].history = {0.8, 0.8};
  t.records[2].history = {0.2, 0.2};
  EXPECT_TRUE(EarlyStoppingEndsTrial(t.records, 2, t.tune));
  EXPECT_FALSE(EarlyStoppingEndsTrial(t.records, 0, t.tune));
  t.tune.mutable_early_stopping()->set_method("none");
  EXPECT_FALSE(EarlyStoppingEndsTrial(t.records, 2, t.tune));
}

TEST(TrialReportsTest, CsvQuotesEveryValue) {
  Tune t = MakeTune();
  Finish(&t.records);
  const std::string csv = TrialsCsv(t.tune, t.records);
  std::istringstream lines(csv);
  std::string header, first;
  std::getline(lines, header);
  std::getline(lines, first);
  EXPECT_EQ(header,
            "trial,state,model_config.tag,optim_config.lr,accuracy,"
            "epochs,seconds");
  EXPECT_EQ(first,
            "trial-000,succeeded,\"\"\"a,\\\"\"b\\\"\"\"\"\",\"0.1\","
            "0.9,2,0.0");
}

TEST(TrialReportsTest, TheTableAndTheProgressLine) {
  Tune t = MakeTune();
  Finish(&t.records);
  const std::string table = TrialTable(t.tune, t.records);
  EXPECT_THAT(table, HasSubstr("trial-001  succeeded"));
  EXPECT_THAT(table, HasSubstr("0.9500"));
  t.records[0].status.state = ChildState::kRunning;
  EXPECT_EQ(TrialsProgress(t.tune, t.records),
            "1 running, 1 failed, best accuracy 0.9500 (trial-001)");
}

PluginRegistry& RegistryWithTiny() {
  static PluginRegistry* registry = [] {
    auto* r = new PluginRegistry;
    EXPECT_TRUE(RegisterBuiltinDataSources(*r).ok());
    EXPECT_TRUE(RegisterTrainerStandIns(*r).ok());
    ModelEntry tiny;
    tiny.name = "tiny";
    tiny.source = "test";
    tiny.factory =
        [](const ModelContext&) -> absl::StatusOr<std::unique_ptr<Model>> {
      return nullptr;
    };
    EXPECT_TRUE(r->Register(std::move(tiny)).ok());
    return r;
  }();
  return *registry;
}

TEST(TrialLauncherTest, ATrialRunsTheBaseConfigWithItsValues) {
  Tune t = MakeTune();
  // Metrics of its own: the tuned one is added, not the default pair.
  t.config.mutable_score_config()->clear_metrics();
  t.config.mutable_score_config()->add_metrics("loss");
  PipelineContext context;
  context.config = &t.config;
  context.config_source = "tune.json";
  context.registry = &RegistryWithTiny();
  absl::StatusOr<RunConfig> trial =
      TrialConfig(context, t.tune, t.records[2].trial);
  ASSERT_TRUE(trial.ok()) << trial.status();
  EXPECT_EQ(trial->pipeline(), "train");
  EXPECT_FALSE(trial->has_pipeline_config());
  EXPECT_EQ(trial->run_name(), "lr_trial");
  EXPECT_EQ(trial->run_config().epochs(), 2);
  EXPECT_EQ(trial->optim_config().lr(), 0.001);
  EXPECT_THAT(std::vector<std::string>(trial->score_config().metrics().begin(),
                                       trial->score_config().metrics().end()),
              ::testing::ElementsAre("loss", "accuracy"));

  t.records[0].trial.overrides.push_back("run_config.epochs=0");
  trial = TrialConfig(context, t.tune, t.records[0].trial);
  ASSERT_FALSE(trial.ok());
  EXPECT_THAT(std::string(trial.status().message()),
              HasSubstr("tune.json: pipeline_config.space gives trial 0"));
}

TEST(TrialLauncherTest, AFreshTrialGetsItsConfigBesideItsDirectory) {
  Tune t = MakeTune();
  TrialRecord& record = t.records[1];
  record.config = t.config;
  TrialLaunch launch;
  launch.trials_dir = TestDir("trials");
  launch.threads = 2;
  launch.timeout_seconds = 30;
  std::filesystem::create_directories(launch.trials_dir + "/trial-001");
  std::ofstream(launch.trials_dir + "/trial-001/log.txt") << "cut short\n";
  absl::StatusOr<ChildRun> run = PrepareTrialRun(record, launch);
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->run_dir, launch.trials_dir + "/trial-001");
  EXPECT_EQ(run->config_path, launch.trials_dir + "/trial-001.json");
  EXPECT_TRUE(run->resume.empty());
  EXPECT_EQ(run->threads, 2);
  EXPECT_EQ(run->timeout_seconds, 30);
  // A trial cut short before its first checkpoint starts again, empty.
  EXPECT_FALSE(std::filesystem::exists(run->run_dir));
  absl::StatusOr<RunConfig> written = LoadRunConfigFile(run->config_path, {});
  ASSERT_TRUE(written.ok()) << written.status();
  EXPECT_EQ(written->seed(), 7);
}

TEST(TrialLauncherTest, AResumedTuneContinuesATrialFromItsCheckpoint) {
  Tune t = MakeTune();
  TrialLaunch launch;
  launch.trials_dir = TestDir("resumed");
  launch.resuming = true;
  const std::string run_dir = launch.trials_dir + "/trial-002";
  std::filesystem::create_directories(run_dir + "/checkpoints");
  std::ofstream(run_dir + "/checkpoints/step-000000004.ckpt") << "state";
  absl::StatusOr<ChildRun> run = PrepareTrialRun(t.records[2], launch);
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->resume, run_dir);
  EXPECT_TRUE(run->config_path.empty());
  EXPECT_TRUE(std::filesystem::exists(run_dir + "/checkpoints"));
  // Not resuming: the same directory starts again.
  launch.resuming = false;
  t.records[2].config = t.config;
  run = PrepareTrialRun(t.records[2], launch);
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_TRUE(run->resume.empty());
  EXPECT_FALSE(std::filesystem::exists(run_dir));
}

}  // namespace
}  // namespace ouroboros::tune
