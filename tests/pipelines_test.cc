// End-to-end: the tune and parallel pipelines run real trials and pipelines
// as child processes of the real main binary, on tiny synthetic runs.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ouroboros/base/json.h"
#include "tests/test_util.h"

namespace ouroboros {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::ReadFile;
using Result = testing::BuiltFilesTest::ProcessResult;

// tests/testdata/tiny_mlp.json without its closing brace, to add sections.
constexpr char kTinyRun[] = R"({
  "run_name": "tiny", "model": "mlp", "seed": 5,
  "data_config": {"dataset": "synthetic",
    "synthetic": {"num_samples": 320, "num_features": 8, "num_classes": 3,
                  "noise": 1.5},
    "split": {"val_fraction": 0.25}},
  "optim_config": {"name": "adam", "lr": 0.01},
  "run_config": {"epochs": 2, "batch_size": 16},
  "model_config": {"layer_sizes": [16]},
  "score_config": {"metrics": ["loss", "accuracy"], "monitor": "accuracy"})";

google::protobuf::Value ReadJson(const fs::path& path) {
  absl::StatusOr<google::protobuf::Value> value = ParseJson(ReadFile(path));
  EXPECT_TRUE(value.ok()) << path << ": " << value.status();
  return value.ok() ? *value : google::protobuf::Value();
}

const google::protobuf::Value& Field(const google::protobuf::Value& v,
                                     const std::string& name) {
  return v.struct_value().fields().at(name);
}

class PipelinesTest : public testing::BuiltFilesTest {
 protected:
  void SetUp() override {
    BuiltFilesTest::SetUp();
    main_ = Built("ouroboros/main");
  }

  std::string WriteConfig(const std::string& name, const std::string& json) {
    const fs::path path = scratch() / name;
    std::ofstream(path) << json;
    return path.string();
  }

  Result Run(const std::vector<std::string>& args) {
    return RunProgram(main_, args);
  }

  std::string main_;
};

TEST_F(PipelinesTest, TunePicksTheBestTrialAndRunsIt) {
  std::string config =
      WriteConfig("tune.json", std::string(kTinyRun) + R"(, "pipeline": "tune",
      "pipeline_config": {"search": "grid", "metric": "accuracy",
        "max_concurrent": 2, "trial_threads": 1,
        "space": {"optim_config.lr": {"grid": [0.00001, 0.01, 0.03]}}}})");
  Result r = Run({"--config=" + config, "--run_dir=tune", "--threads=1"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const fs::path run = scratch() / "tune";
  google::protobuf::Value trials = ReadJson(run / "trials.json");
  const auto& list = Field(trials, "trials").list_value().values();
  ASSERT_EQ(list.size(), 3);
  double best_value = -1;
  std::string best_name;
  for (const auto& trial : list) {
    EXPECT_EQ(Field(trial, "state").string_value(), "succeeded");
    const auto& history = Field(trial, "history").list_value().values();
    ASSERT_EQ(history.size(), 2);  // one value per epoch
    const double value = history[1].number_value();
    if (value > best_value) {
      best_value = value;
      best_name = Field(trial, "name").string_value();
    }
  }
  EXPECT_THAT(r.output, HasSubstr("best: " + best_name));
  // Every trial has its own run directory, config and output.
  for (const char* name : {"trial-000", "trial-001", "trial-002"}) {
    EXPECT_TRUE(fs::exists(run / "trials" / name / "metrics.json")) << name;
    EXPECT_TRUE(fs::exists(run / "trials" / (std::string(name) + ".json")));
    EXPECT_TRUE(fs::exists(run / "trials" / (std::string(name) + ".out")));
  }
  std::vector<std::string> csv =
      absl::StrSplit(ReadFile(run / "trials.csv"), '\n', absl::SkipEmpty());
  ASSERT_EQ(csv.size(), 4u);
  EXPECT_EQ(csv[0], "trial,state,optim_config.lr,accuracy,epochs,seconds");
  EXPECT_THAT(csv[1], HasSubstr("trial-000,succeeded,\"1e-05\","));
  // The best values, then a full run with them.
  google::protobuf::Value best = ReadJson(run / "best_config.json");
  EXPECT_EQ(Field(best, "pipeline").string_value(), "train");
  EXPECT_TRUE(fs::exists(run / "final/metrics.json"));
  EXPECT_TRUE(fs::exists(run / "final/checkpoints/step-000000024.ckpt"));
  EXPECT_THAT(ReadFile(run / "log.txt"), HasSubstr("final run"));
}

TEST_F(PipelinesTest, FailedAndHungTrialsAreRecordedAndTheSearchGoesOn) {
  std::string config =
      WriteConfig("tune.json", std::string(kTinyRun) + R"(, "pipeline": "tune",
      "pipeline_config": {"search": "grid", "max_concurrent": 2,
        "trial_timeout_seconds": 6, "skip_final_run": true,
        "space": {"optim_config.lr": {"grid": [0.01, 1e30]},
                  "run_config.epochs": {"grid": [2, 100000]}}}})");
  Result r = Run({"--config=" + config, "--run_dir=tune", "--threads=1"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  google::protobuf::Value trials = ReadJson(scratch() / "tune/trials.json");
  const auto& list = Field(trials, "trials").list_value().values();
  ASSERT_EQ(list.size(), 4);
  // (lr, epochs): (0.01, 2) ends; (0.01, 100000) hangs past the timeout;
  // lr 1e30 makes the loss NaN, and the trial exits 1.
  EXPECT_EQ(Field(list[0], "state").string_value(), "succeeded");
  EXPECT_EQ(Field(list[1], "state").string_value(), "timed out");
  EXPECT_EQ(Field(list[2], "state").string_value(), "failed");
  EXPECT_EQ(Field(list[2], "exit_code").number_value(), 1);
  EXPECT_EQ(Field(list[3], "state").string_value(), "failed");
  // (Not EXPECT_THAT on the file: a hung trial's output is megabytes.)
  EXPECT_TRUE(absl::StrContains(
      ReadFile(scratch() / "tune/trials/trial-002.out"), "loss became"));
  EXPECT_THAT(r.output, HasSubstr("best: trial-000"));
  EXPECT_FALSE(fs::exists(scratch() / "tune/final"));
}

TEST_F(PipelinesTest, MedianRuleStopsBadTrials) {
  // One at a time, so the rule sees finished trials: lr 1e-5 barely moves
  // from chance and is stopped after its grace epoch. 300 epochs (a few
  // seconds) leave the tune time to see it.
  std::string config =
      WriteConfig("tune.json", std::string(kTinyRun) + R"(, "pipeline": "tune",
      "pipeline_config": {"search": "grid", "metric": "accuracy",
        "max_concurrent": 1, "skip_final_run": true, "trial_epochs": 300,
        "early_stopping": {"method": "median", "grace_epochs": 1,
                           "min_trials": 2},
        "space": {"optim_config.lr": {"grid": [0.01, 0.02, 0.00001]}}}})");
  Result r = Run({"--config=" + config, "--run_dir=tune", "--threads=1"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  google::protobuf::Value trials = ReadJson(scratch() / "tune/trials.json");
  const auto& list = Field(trials, "trials").list_value().values();
  ASSERT_EQ(list.size(), 3);
  EXPECT_EQ(Field(list[0], "state").string_value(), "succeeded");
  EXPECT_EQ(Field(list[1], "state").string_value(), "succeeded");
  EXPECT_EQ(Field(list[2], "state").string_value(), "stopped");
  EXPECT_LT(Field(list[2], "history").list_value().values_size(), 300);
  EXPECT_THAT(r.output, HasSubstr("trial-002: stopped early after epoch"));
}

TEST_F(PipelinesTest, KilledTuneResumesSkippingFinishedTrials) {
  std::string config =
      WriteConfig("tune.json", std::string(kTinyRun) + R"(, "pipeline": "tune",
      "pipeline_config": {"search": "grid", "max_concurrent": 1,
        "skip_final_run": true,
        "space": {"optim_config.lr": {"grid": [0.01, 0.02, 0.03]}}}})");
  // Kill the tune (SIGKILL: no clean-up) once its first trial is recorded.
  std::string script = absl::StrCat(
      testing::ShellQuote(main_), " --config=", testing::ShellQuote(config),
      " --run_dir=tune --threads=1 >tune.out 2>&1 & pid=$!; "
      "for i in $(seq 600); do grep -q succeeded tune/trials.json 2>/dev/null"
      " && break; sleep 0.05; done; kill -9 $pid; wait $pid; "
      "grep -o succeeded tune/trials.json | wc -l > done_before.txt");
  Result killed = RunProgram("/bin/sh", {"-c", script});
  const int done_before = std::stoi(ReadFile(scratch() / "done_before.txt"));
  ASSERT_GE(done_before, 1)
      << killed.output << ReadFile(scratch() / "tune.out");
  ASSERT_LT(done_before, 3);
  const std::string first_output =
      ReadFile(scratch() / "tune/trials/trial-000.out");

  Result resumed = Run({"--resume=tune", "--threads=1"});
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_THAT(resumed.output,
              HasSubstr(absl::StrCat("resuming: ", done_before,
                                     " of 3 trials already done")));
  google::protobuf::Value trials = ReadJson(scratch() / "tune/trials.json");
  for (const auto& trial : Field(trials, "trials").list_value().values()) {
    EXPECT_EQ(Field(trial, "state").string_value(), "succeeded");
  }
  // The finished trial was not run again.
  EXPECT_EQ(ReadFile(scratch() / "tune/trials/trial-000.out"), first_output);
}

TEST_F(PipelinesTest, BadSearchSpaceExitsTwoBeforeAnythingRuns) {
  std::string config =
      WriteConfig("tune.json", std::string(kTinyRun) + R"(, "pipeline": "tune",
      "pipeline_config": {"space": {"optim_config.lrr": {"grid": [0.1]}}}})");
  Result r = Run({"--config=" + config, "--run_dir=tune"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("pipeline_config.space: trial 0 "
                                  "(optim_config.lrr=0.1)"));
  EXPECT_THAT(r.output, HasSubstr("optim_config.lrr"));
  EXPECT_FALSE(fs::exists(scratch() / "tune"));
}

TEST_F(PipelinesTest, ParallelRunsEveryPipelineAndReportsTheFailedOne) {
  std::string tiny = Built("tests/testdata/tiny_mlp.json");
  std::string config = WriteConfig("parallel.json", R"({
    "run_name": "both", "pipeline": "parallel",
    "pipeline_config": {"workers": 2, "threads_per_pipeline": 1,
      "pipelines": [
        {"name": "from_file", "config": ")" + tiny + R"("},
        {"name": "diverges", "config": ")" + tiny + R"(",
         "set": ["optim_config.lr=1e30"]},
        {"inline_config": )" + std::string(kTinyRun) + R"(}}]}})");
  Result r = Run({"--config=" + config, "--run_dir=par"});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr("1 of 3 pipelines failed: diverges"));
  const fs::path run = scratch() / "par";
  google::protobuf::Value summary = ReadJson(run / "summary.json");
  const auto& rows = Field(summary, "pipelines").list_value().values();
  ASSERT_EQ(rows.size(), 3);
  EXPECT_EQ(Field(rows[0], "state").string_value(), "succeeded");
  EXPECT_EQ(Field(rows[1], "state").string_value(), "failed");
  EXPECT_EQ(Field(rows[2], "name").string_value(), "tiny");
  EXPECT_EQ(Field(rows[2], "state").string_value(), "succeeded");
  EXPECT_GT(Field(rows[2], "test_accuracy").number_value(), 0);
  EXPECT_TRUE(fs::exists(run / "pipelines/from_file/metrics.json"));
  EXPECT_TRUE(fs::exists(run / "pipelines/tiny/metrics.json"));
  EXPECT_THAT(ReadFile(run / "log.txt"), HasSubstr("summary"));
  // One status line per pipeline while they ran (no TTY: plain lines).
  EXPECT_THAT(r.output, HasSubstr("from_file"));
  EXPECT_THAT(r.output, HasSubstr("epoch 2/2"));
}

TEST_F(PipelinesTest, ParallelRefusesABadMemberByItsPath) {
  std::string config = WriteConfig("parallel.json", R"({
    "pipeline": "parallel",
    "pipeline_config": {"pipelines": [
      {"model": "mlp"},
      {"inline_config": {"model": "mlp", "optim_config": {"lrr": 1}}}]}})");
  Result r = Run({"--config=" + config, "--run_dir=par"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("pipeline_config.pipelines[1]."
                                  "inline_config: optim_config.lrr"));
  EXPECT_FALSE(fs::exists(scratch() / "par"));
  Result empty = Run({"--pipeline=parallel", "--model=mlp"});
  EXPECT_EQ(empty.exit_code, 2);
  EXPECT_THAT(empty.output, HasSubstr("pipeline_config.pipelines: list at "
                                      "least one pipeline"));
}

TEST_F(PipelinesTest, ParallelNamesTheSettingOutOfRange) {
  std::string config = WriteConfig("parallel_range.json", R"({
    "pipeline": "parallel",
    "pipeline_config": {"pipelines": [{"model": "mlp"}],
                        "timeout_seconds": -1}})");
  Result r = Run({"--config=" + config, "--run_dir=par_range"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("pipeline_config.timeout_seconds: must be "
                                  ">= 0 (got -1)"));
  EXPECT_FALSE(fs::exists(scratch() / "par_range"));
}

}  // namespace
}  // namespace ouroboros
