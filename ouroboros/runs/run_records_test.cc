#include "ouroboros/runs/run_records.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ouroboros/base/files.h"
#include "ouroboros/runs/run_layout.h"

namespace ouroboros {
namespace {

using ::testing::ElementsAre;
using ::testing::Pair;

std::string FreshRunDir(const std::string& name) {
  const std::string dir = testing::TempDir() + "/run_records_test/" + name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

std::string Text(const std::string& path) {
  std::ifstream file(path);
  return std::string(std::istreambuf_iterator<char>(file), {});
}

constexpr double kNan = std::numeric_limits<double>::quiet_NaN();

TEST(RunRecordsTest, EpochRecordsRoundTripAndDropWhatIsNotFinite) {
  const std::string dir = FreshRunDir("epochs");
  EXPECT_TRUE(ReadEpochRecords(dir).empty());  // no file yet
  ASSERT_TRUE(
      AppendEpochRecord(dir, EpochRecord{1,
                                         10,
                                         0.5,
                                         0.01,
                                         "val",
                                         {{"accuracy", 0.75}, {"auroc", kNan}},
                                         {{"rho", 0.2}}})
          .ok());
  ASSERT_TRUE(
      AppendEpochRecord(dir, EpochRecord{2, 20, 0.25, 0.005, "test", {}, {}})
          .ok());
  // The format plots.py and other tools read.
  EXPECT_EQ(Text(RunFile(dir, kEpochRecordFile)),
            "{\"epoch\": 1, \"lr\": 0.01, \"model\": {\"rho\": 0.2}, "
            "\"step\": 10, \"train_loss\": 0.5, \"val\": {\"accuracy\": "
            "0.75}}\n"
            "{\"epoch\": 2, \"lr\": 0.005, \"model\": {}, \"step\": 20, "
            "\"test\": {}, \"train_loss\": 0.25}\n");
  const std::vector<EpochRecord> records = ReadEpochRecords(dir);
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0].epoch, 1);
  EXPECT_EQ(records[0].step, 10);
  EXPECT_EQ(records[0].train_loss, 0.5);
  EXPECT_EQ(records[0].lr, 0.01);
  EXPECT_EQ(records[0].evaluated_on, "val");
  EXPECT_THAT(records[0].metrics, ElementsAre(Pair("accuracy", 0.75)));
  EXPECT_THAT(records[0].model, ElementsAre(Pair("rho", 0.2)));
  EXPECT_EQ(records[1].evaluated_on, "test");
}

TEST(RunRecordsTest, ALastLineStillBeingWrittenIsLeftOut) {
  const std::string dir = FreshRunDir("partial");
  ASSERT_TRUE(AppendStepLogRecord(dir, StepLogRecord{50, 1, 0.7, 0.1}).ok());
  std::ofstream(RunFile(dir, kStepLogFile), std::ios::app)
      << "{\"step\":100,\"ep";
  const std::vector<StepLogRecord> records = ReadStepLogRecords(dir);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].step, 50);
  EXPECT_EQ(records[0].epoch, 1);
  EXPECT_EQ(records[0].loss, 0.7);
  EXPECT_EQ(records[0].lr, 0.1);
}

TEST(RunRecordsTest, TheLastStepEvaluationOfAStepWins) {
  const std::string dir = FreshRunDir("evals");
  StepEvalRecord first;
  first.step = 200;
  first.epoch = 2;
  first.train_seconds = 3.5;
  first.val = {{"accuracy", 0.5}};
  StepEvalRecord earlier = first;
  earlier.step = 100;
  earlier.epoch = 1;
  earlier.train_seconds = kNan;  // left out, read back as NaN
  StepEvalRecord resumed = first;
  resumed.val = {{"accuracy", 0.6}};
  resumed.test = {{"accuracy", 0.55}};
  for (const StepEvalRecord* record : {&first, &earlier, &resumed}) {
    ASSERT_TRUE(AppendStepEvalRecord(dir, *record).ok());
  }
  const std::vector<StepEvalRecord> records = ReadStepEvalRecords(dir);
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0].step, 100);
  EXPECT_TRUE(std::isnan(records[0].train_seconds));
  EXPECT_TRUE(records[0].test.empty());
  EXPECT_EQ(records[1].step, 200);
  EXPECT_EQ(records[1].train_seconds, 3.5);
  EXPECT_THAT(records[1].val, ElementsAre(Pair("accuracy", 0.6)));
  EXPECT_THAT(records[1].test, ElementsAre(Pair("accuracy", 0.55)));
}

}  // namespace
}  // namespace ouroboros
