#include "ouroboros/runs/run_metrics.h"

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <string>

#include "gtest/gtest.h"
#include "ouroboros/base/files.h"
#include "ouroboros/base/json.h"
#include "ouroboros/runs/run_layout.h"

namespace ouroboros {
namespace {

namespace fs = std::filesystem;

std::string FreshRunDir(const std::string& name) {
  const fs::path dir = fs::path(std::getenv("TEST_TMPDIR")) / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

RunMetrics Finished() {
  RunMetrics metrics;
  metrics.epochs = 5;
  metrics.steps = 2110;
  metrics.last_train_loss = 0.3125;
  metrics.val = {{"accuracy", 0.875}, {"loss", 0.375}};
  metrics.test = {{"accuracy", 0.8625}, {"loss", 0.40625}};
  metrics.final_checkpoint = "/runs/a/checkpoints/step-000002110.ckpt";
  return metrics;
}

TEST(RunMetricsTest, WhatIsWrittenReadsBack) {
  const std::string dir = FreshRunDir("round_trip");
  RunMetrics written = Finished();
  written.early_stopping =
      EarlyStoppingRecord{true, "accuracy", 3, 0.001, 0.875};
  ASSERT_TRUE(WriteRunMetrics(dir, written).ok());

  absl::StatusOr<RunMetrics> read = ReadRunMetrics(dir);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->epochs, 5);
  EXPECT_EQ(read->steps, 2110);
  EXPECT_EQ(read->last_train_loss, 0.3125);
  EXPECT_EQ(read->val, written.val);
  EXPECT_EQ(read->test, written.test);
  EXPECT_EQ(read->final_checkpoint, written.final_checkpoint);
  ASSERT_TRUE(read->early_stopping.has_value());
  EXPECT_TRUE(read->early_stopping->stopped);
  EXPECT_EQ(read->early_stopping->monitor, "accuracy");
  EXPECT_EQ(read->early_stopping->patience, 3);
  EXPECT_EQ(read->early_stopping->min_delta, 0.001);
  EXPECT_EQ(read->early_stopping->best, 0.875);
  EXPECT_EQ(read->TestMetric("accuracy"), 0.8625);
}

// The file's keys are the ones tools/compare_runs, the plots and users'
// scripts read by name.
TEST(RunMetricsTest, FileHasTheDocumentedKeys) {
  const std::string dir = FreshRunDir("keys");
  ASSERT_TRUE(WriteRunMetrics(dir, Finished()).ok());
  absl::StatusOr<google::protobuf::Value> json =
      ReadJsonFile(RunFile(dir, kMetricsFile));
  ASSERT_TRUE(json.ok()) << json.status();
  const auto& fields = json->struct_value().fields();
  EXPECT_EQ(fields.at("epochs").number_value(), 5);
  EXPECT_EQ(fields.at("steps").number_value(), 2110);
  EXPECT_EQ(
      fields.at("test").struct_value().fields().at("accuracy").number_value(),
      0.8625);
  EXPECT_EQ(fields.at("final_checkpoint").string_value(),
            "/runs/a/checkpoints/step-000002110.ckpt");
  // Only runs with a patience record early stopping.
  EXPECT_EQ(fields.count("early_stopping"), 0u);
}

TEST(RunMetricsTest, MetricsThatAreNotFiniteAreLeftOut) {
  const std::string dir = FreshRunDir("not_finite");
  RunMetrics written = Finished();
  written.test["rho"] = std::numeric_limits<double>::infinity();
  written.val["rho"] = std::nan("");
  ASSERT_TRUE(WriteRunMetrics(dir, written).ok());
  absl::StatusOr<RunMetrics> read = ReadRunMetrics(dir);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->test.count("rho"), 0u);
  EXPECT_EQ(read->val.count("rho"), 0u);
  EXPECT_TRUE(std::isnan(read->TestMetric("rho")));
  EXPECT_TRUE(std::isnan(read->TestMetric("never_measured")));
}

TEST(RunMetricsTest, AnUnfinishedRunIsNotFound) {
  const std::string dir = FreshRunDir("unfinished");
  absl::StatusOr<RunMetrics> read = ReadRunMetrics(dir);
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(read.status().message().find("metrics.json"), std::string::npos)
      << read.status();
}

// Bad files name the file and the field.
TEST(RunMetricsTest, WrongTypesNameFileAndField) {
  struct Case {
    const char* json;
    const char* field;
  };
  for (const Case& c : {
           Case{R"({"epochs": "five"})", "epochs: must be a number"},
           Case{R"({"steps": 2.5})", "steps: must be a whole number"},
           Case{R"({"test": {"accuracy": "high"}})",
                "test.accuracy: must be a number"},
           Case{R"({"val": [1]})", "val: must be an object"},
           Case{R"({"early_stopping": {"stopped": 1}})",
                "early_stopping.stopped: must be true or false"},
           Case{R"([1, 2])", "must be a JSON object"},
           Case{R"({"epochs": 5,})", "line 1"},
       }) {
    const std::string dir = FreshRunDir("bad");
    ASSERT_TRUE(WriteFileAtomically(RunFile(dir, kMetricsFile), c.json).ok());
    absl::StatusOr<RunMetrics> read = ReadRunMetrics(dir);
    ASSERT_FALSE(read.ok()) << c.json;
    EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument)
        << read.status();
    const std::string message(read.status().message());
    EXPECT_NE(message.find(RunFile(dir, kMetricsFile)), std::string::npos)
        << message;
    EXPECT_NE(message.find(c.field), std::string::npos) << message;
  }
}

TEST(RunMetricsTest, FieldsLeftOutTakeTheirDefaults) {
  const std::string dir = FreshRunDir("sparse");
  ASSERT_TRUE(
      WriteFileAtomically(RunFile(dir, kMetricsFile), R"({"epochs": 2})").ok());
  absl::StatusOr<RunMetrics> read = ReadRunMetrics(dir);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->epochs, 2);
  EXPECT_EQ(read->steps, 0);
  EXPECT_TRUE(read->test.empty());
  EXPECT_FALSE(read->early_stopping.has_value());
}

}  // namespace
}  // namespace ouroboros
