#include "ouroboros/config/config_checks.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include "gtest/gtest.h"

namespace ouroboros {
namespace {

std::string Message(const absl::Status& status) {
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  return std::string(status.message());
}

constexpr double kNan = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

TEST(ConfigChecksTest, AtLeastAndAboveKeepTheValuesType) {
  EXPECT_TRUE(CheckAtLeast("a.b", int32_t{1}, 1).ok());
  EXPECT_EQ(Message(CheckAtLeast("a.b", int32_t{0}, 1)),
            "a.b: must be >= 1 (got 0)");
  EXPECT_EQ(Message(CheckAtLeast("a.steps", int64_t{-200000000}, 0)),
            "a.steps: must be >= 0 (got -200000000)");
  EXPECT_EQ(Message(CheckAtLeast("s.t_0", 0, 1, " epoch")),
            "s.t_0: must be >= 1 epoch (got 0)");
  EXPECT_EQ(Message(CheckFiniteAtLeast("r.clip", -1, 0, ", 0 meaning off")),
            "r.clip: must be a finite number >= 0, 0 meaning off (got -1)");
  EXPECT_EQ(Message(CheckAtLeast("a.x", kNan, 0.0)),
            "a.x: must be >= 0 (got nan)");
  EXPECT_TRUE(CheckAbove("a.lr", 0.5, 0.0).ok());
  EXPECT_EQ(Message(CheckAbove("a.lr", 0.0, 0.0)), "a.lr: must be > 0 (got 0)");
}

TEST(ConfigChecksTest, FiniteChecksRefuseInfinityAndNan) {
  EXPECT_TRUE(CheckFiniteAtLeast("a.noise", 0.0, 0).ok());
  EXPECT_EQ(Message(CheckFiniteAtLeast("a.noise", kInf, 0)),
            "a.noise: must be a finite number >= 0 (got inf)");
  EXPECT_EQ(Message(CheckFiniteAbove("a.std", kNan, 0)),
            "a.std: must be a finite number > 0 (got nan)");
  EXPECT_TRUE(CheckFiniteAbove("a.std", 1e-3, 0).ok());
}

TEST(ConfigChecksTest, InRangeSaysWhichEndsItHolds) {
  EXPECT_TRUE(CheckInRange("f", 0.0, 0.0, 1.0, Interval::kClosedOpen).ok());
  EXPECT_EQ(Message(CheckInRange("f", 1.0, 0.0, 1.0, Interval::kClosedOpen)),
            "f: must be in [0, 1) (got 1)");
  EXPECT_EQ(Message(CheckInRange("f", 0.0, 0.0, 1.0, Interval::kOpenClosed)),
            "f: must be in (0, 1] (got 0)");
  EXPECT_TRUE(CheckInRange("f", 1.0, 0.0, 1.0, Interval::kOpenClosed).ok());
  EXPECT_EQ(Message(CheckInRange("f", kNan, 0.0, 1.0, Interval::kOpen)),
            "f: must be in (0, 1) (got nan)");
  EXPECT_EQ(Message(CheckInRange("bins", 1001, 1, 1000)),
            "bins: must be in [1, 1000] (got 1001)");
  EXPECT_TRUE(CheckInRange("bins", 1000, 1, 1000).ok());
}

TEST(ConfigChecksTest, OneOfListsTheKnownNames) {
  EXPECT_TRUE(CheckOneOf("m", "kfold", {"holdout", "kfold"}, "split").ok());
  EXPECT_EQ(Message(CheckOneOf("m", "kfolds", {"holdout", "kfold"}, "split")),
            "m: unknown split 'kfolds'; known: holdout, kfold");
}

}  // namespace
}  // namespace ouroboros
