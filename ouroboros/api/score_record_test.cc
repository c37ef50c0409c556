#include "ouroboros/api/score_record.h"

#include <cmath>
#include <limits>

#include "gtest/gtest.h"

namespace ouroboros {
namespace {

ScoreConfig Monitor(const std::string& metric, double min_delta = 0) {
  ScoreConfig score;
  score.set_monitor(metric);
  score.set_min_delta(min_delta);
  return score;
}

TEST(MonitorMaximizesTest, LossIsMinimizedUnlessAModeSaysOtherwise) {
  EXPECT_FALSE(MonitorMaximizes(Monitor("loss")));
  EXPECT_TRUE(MonitorMaximizes(Monitor("accuracy")));
  ScoreConfig score = Monitor("loss");
  score.set_mode("max");
  EXPECT_TRUE(MonitorMaximizes(score));
}

TEST(UpdateScoreRecordTest, TheFirstFiniteValueIsTheBest) {
  ScoreRecord record;
  EXPECT_TRUE(
      UpdateScoreRecord(Monitor("accuracy"), {{"accuracy", 0.5}}, &record));
  EXPECT_TRUE(record.has_best);
  EXPECT_DOUBLE_EQ(record.best, 0.5);
  EXPECT_EQ(record.epochs_without_improvement, 0);
}

TEST(UpdateScoreRecordTest, CountsEvaluationsWithoutImprovement) {
  const ScoreConfig score = Monitor("loss");
  ScoreRecord record;
  ASSERT_TRUE(UpdateScoreRecord(score, {{"loss", 1.0}}, &record));
  EXPECT_FALSE(UpdateScoreRecord(score, {{"loss", 1.5}}, &record));
  EXPECT_FALSE(UpdateScoreRecord(score, {{"loss", 1.0}}, &record));
  EXPECT_EQ(record.epochs_without_improvement, 2);
  EXPECT_TRUE(UpdateScoreRecord(score, {{"loss", 0.5}}, &record));
  EXPECT_EQ(record.epochs_without_improvement, 0);
  EXPECT_DOUBLE_EQ(record.best, 0.5);
}

TEST(UpdateScoreRecordTest, ANewBestByLessThanMinDeltaIsNoImprovement) {
  const ScoreConfig score = Monitor("accuracy", /*min_delta=*/0.1);
  ScoreRecord record;
  ASSERT_TRUE(UpdateScoreRecord(score, {{"accuracy", 0.5}}, &record));
  // Saved as the best (the best checkpoint follows it), yet counted as an
  // evaluation without improvement (early stopping's count goes on).
  EXPECT_TRUE(UpdateScoreRecord(score, {{"accuracy", 0.55}}, &record));
  EXPECT_DOUBLE_EQ(record.best, 0.55);
  EXPECT_EQ(record.epochs_without_improvement, 1);
  EXPECT_TRUE(UpdateScoreRecord(score, {{"accuracy", 0.7}}, &record));
  EXPECT_EQ(record.epochs_without_improvement, 0);
}

TEST(UpdateScoreRecordTest, AValueThatIsNotFiniteIsNeverTheBest) {
  const ScoreConfig score = Monitor("loss");
  ScoreRecord record;
  EXPECT_FALSE(UpdateScoreRecord(
      score, {{"loss", std::numeric_limits<double>::quiet_NaN()}}, &record));
  EXPECT_FALSE(record.has_best);
  EXPECT_EQ(record.epochs_without_improvement, 1);
  EXPECT_FALSE(UpdateScoreRecord(
      score, {{"loss", -std::numeric_limits<double>::infinity()}}, &record));
  EXPECT_FALSE(record.has_best);
}

TEST(UpdateScoreRecordTest, AMissingMonitorCountsAsZero) {
  ScoreRecord record;
  EXPECT_TRUE(UpdateScoreRecord(Monitor("f1"), {{"loss", 3.0}}, &record));
  EXPECT_DOUBLE_EQ(record.best, 0.0);
}

}  // namespace
}  // namespace ouroboros
