#include "ouroboros/api/metrics.h"

#include <ATen/ATen.h>

#include <cmath>

#include "gtest/gtest.h"

namespace ouroboros {
namespace {

at::Tensor Doubles(std::vector<double> v) { return at::tensor(v, at::kDouble); }

TEST(BinaryAurocTest, MatchesHandComputedValues) {
  // 4 positive/negative pairs, 3 ranked correctly: 3/4.
  EXPECT_DOUBLE_EQ(
      BinaryAuroc(Doubles({0.1, 0.4, 0.35, 0.8}), at::tensor({0, 0, 1, 1})),
      0.75);
  EXPECT_DOUBLE_EQ(BinaryAuroc(Doubles({1, 2, 3}), at::tensor({0, 1, 1})), 1.0);
  EXPECT_DOUBLE_EQ(BinaryAuroc(Doubles({3, 2, 1}), at::tensor({0, 1, 1})), 0.0);
  // All tied: every pair counts one half.
  EXPECT_DOUBLE_EQ(
      BinaryAuroc(Doubles({0.5, 0.5, 0.5, 0.5}), at::tensor({0, 1, 0, 1})),
      0.5);
  // One tie between a positive and a negative: (1 + 1 + 0.5 + 1) / 4.
  EXPECT_DOUBLE_EQ(
      BinaryAuroc(Doubles({0.1, 0.5, 0.5, 0.9}), at::tensor({0, 0, 1, 1})),
      0.875);
  EXPECT_TRUE(std::isnan(BinaryAuroc(Doubles({1, 2}), at::tensor({1, 1}))));
}

TEST(ClassificationMetricsTest, MacroAveragesByHand) {
  // Targets 0, 1, 2, 2; predictions (argmax) 0, 2, 2, 1.
  at::Tensor logits = Doubles({2, 0, 0,  //
                               0, 0, 2,  //
                               0, 0, 2,  //
                               0, 2, 0})
                          .view({4, 3});
  at::Tensor targets = at::tensor({0, 1, 2, 2}, at::kLong);
  ClassificationMetrics m = ComputeClassificationMetrics(logits, targets);
  EXPECT_DOUBLE_EQ(m.accuracy, 0.5);
  // Per class (P, R, F1): c0 (1, 1, 1); c1 (0, 0, 0); c2 (1/2, 1/2, 1/2).
  EXPECT_DOUBLE_EQ(m.precision, 0.5);
  EXPECT_DOUBLE_EQ(m.recall, 0.5);
  EXPECT_DOUBLE_EQ(m.f1, 0.5);
  // Cross-entropy: each row's logit 2 beside two zeros gives
  // -log(e^2 / (e^2 + 2)) when right and -log(1 / (e^2 + 2)) when wrong.
  const double right = -std::log(std::exp(2.0) / (std::exp(2.0) + 2));
  const double wrong = -std::log(1 / (std::exp(2.0) + 2));
  EXPECT_NEAR(m.loss, (2 * right + 2 * wrong) / 4, 1e-12);
  EXPECT_DOUBLE_EQ(m.Get("f1"), m.f1);
}

TEST(ClassificationMetricsTest, PrecisionDiffersFromRecall) {
  // Targets 0, 0, 0, 1; predictions 0, 1, 1, 1.
  at::Tensor logits = Doubles({1, 0, 0, 1, 0, 1, 0, 1}).view({4, 2});
  at::Tensor targets = at::tensor({0, 0, 0, 1}, at::kLong);
  ClassificationMetrics m = ComputeClassificationMetrics(logits, targets);
  // c0: P 1/1, R 1/3, F1 1/2; c1: P 1/3, R 1/1, F1 1/2.
  EXPECT_DOUBLE_EQ(m.precision, (1 + 1.0 / 3) / 2);
  EXPECT_DOUBLE_EQ(m.recall, (1.0 / 3 + 1) / 2);
  EXPECT_NEAR(m.f1, 0.5, 1e-12);
  EXPECT_DOUBLE_EQ(m.accuracy, 0.5);
}

TEST(ClassificationMetricsTest, PerfectRankingGivesAurocOne) {
  at::Tensor logits =
      Doubles({5, 0, 0, 0, 5, 0, 0, 0, 5, 0, 1, 4}).view({4, 3});
  at::Tensor targets = at::tensor({0, 1, 2, 2}, at::kLong);
  ClassificationMetrics m = ComputeClassificationMetrics(logits, targets);
  EXPECT_DOUBLE_EQ(m.auroc, 1.0);
  EXPECT_DOUBLE_EQ(m.accuracy, 1.0);
  EXPECT_DOUBLE_EQ(m.f1, 1.0);
}

TEST(ClassificationMetricsTest, AurocSkipsClassesWithoutPositives) {
  // Class 2 never occurs: averaged over classes 0 and 1 only.
  // Class 0 scores: 0.7 (y=1), 0.6 (0), 0.2 (1) -> pairs (0.7>0.6) yes,
  // (0.2>0.6) no: 1/2. Class 1 mirrors it.
  at::Tensor probs = Doubles({0.7, 0.2, 0.1,  //
                              0.6, 0.3, 0.1,  //
                              0.2, 0.7, 0.1})
                         .view({3, 3});
  at::Tensor targets = at::tensor({0, 1, 0}, at::kLong);
  ClassificationMetrics m = ComputeClassificationMetrics(probs.log(), targets);
  const double class0 =
      BinaryAuroc(Doubles({0.7, 0.6, 0.2}), at::tensor({1, 0, 1}));
  const double class1 =
      BinaryAuroc(Doubles({0.2, 0.3, 0.7}), at::tensor({0, 1, 0}));
  EXPECT_DOUBLE_EQ(class0, 0.5);
  EXPECT_DOUBLE_EQ(class1, 0.5);
  EXPECT_NEAR(m.auroc, (class0 + class1) / 2, 1e-12);
}

}  // namespace
}  // namespace ouroboros
