#include "ouroboros/api/schedule.h"

#include "gtest/gtest.h"

namespace ouroboros {
namespace {

constexpr int64_t kStepsPerEpoch = 10;

double At(const SchedulerConfig& s, int64_t step, double lr = 1.0) {
  return ScheduledLearningRate(s, lr, step, kStepsPerEpoch);
}

TEST(ScheduleTest, NoneKeepsTheRate) {
  SchedulerConfig s;
  EXPECT_DOUBLE_EQ(At(s, 0, 0.3), 0.3);
  EXPECT_DOUBLE_EQ(At(s, 12345, 0.3), 0.3);
}

TEST(ScheduleTest, StepDecaysEveryStepSizeEpochs) {
  SchedulerConfig s;
  s.set_name("step");
  s.set_gamma(0.1);
  s.set_step_size(2);
  EXPECT_DOUBLE_EQ(At(s, 0), 1.0);
  EXPECT_DOUBLE_EQ(At(s, 19), 1.0);
  EXPECT_NEAR(At(s, 20), 0.1, 1e-15);
  EXPECT_NEAR(At(s, 45), 0.01, 1e-15);
}

TEST(ScheduleTest, MultistepDecaysAtMilestones) {
  SchedulerConfig s;
  s.set_name("multistep");
  s.set_gamma(0.5);
  s.add_milestones(1);
  s.add_milestones(3);
  EXPECT_DOUBLE_EQ(At(s, 9), 1.0);
  EXPECT_DOUBLE_EQ(At(s, 10), 0.5);
  EXPECT_DOUBLE_EQ(At(s, 29), 0.5);
  EXPECT_DOUBLE_EQ(At(s, 30), 0.25);
}

TEST(ScheduleTest, CosineWarmRestarts) {
  SchedulerConfig s;
  s.set_name("cosine_warm_restarts");
  s.set_t_0(2);
  s.set_eta_min(0.0);
  EXPECT_DOUBLE_EQ(At(s, 0), 1.0);
  EXPECT_NEAR(At(s, 10), 0.5, 1e-12);  // half way through the first period
  EXPECT_NEAR(At(s, 20), 1.0, 1e-12);  // restart
  s.set_t_mult(2);                     // periods 2, 4, 8 epochs
  EXPECT_NEAR(At(s, 20), 1.0, 1e-12);  // second period starts at epoch 2
  EXPECT_NEAR(At(s, 40), 0.5, 1e-12);  // half of the 4-epoch period
  EXPECT_NEAR(At(s, 60), 1.0, 1e-12);  // third period starts at epoch 6
  s.set_eta_min(0.2);
  EXPECT_NEAR(At(s, 40), 0.6, 1e-12);
}

TEST(ScheduleTest, CyclicTriangle) {
  SchedulerConfig s;
  s.set_name("cyclic");
  s.set_max_lr(1.1);
  s.set_step_size_up(5);
  EXPECT_NEAR(At(s, 0, 0.1), 0.1, 1e-12);
  EXPECT_NEAR(At(s, 2, 0.1), 0.5, 1e-12);
  EXPECT_NEAR(At(s, 5, 0.1), 1.1, 1e-12);
  EXPECT_NEAR(At(s, 8, 0.1), 0.5, 1e-12);
  EXPECT_NEAR(At(s, 10, 0.1), 0.1, 1e-12);
}

TEST(ScheduleTest, LinearWarmupAloneAndCombined) {
  SchedulerConfig s;
  s.set_name("linear_warmup");
  s.set_warmup_steps(4);
  EXPECT_DOUBLE_EQ(At(s, 0), 0.25);
  EXPECT_DOUBLE_EQ(At(s, 3), 1.0);
  EXPECT_DOUBLE_EQ(At(s, 100), 1.0);
  s.set_name("step");
  s.set_gamma(0.1);
  s.set_step_size(1);
  s.set_warmup_steps(20);
  EXPECT_NEAR(At(s, 9), 0.5, 1e-12);               // warm-up only
  EXPECT_NEAR(At(s, 10), 0.1 * 11 / 20.0, 1e-12);  // both
}

}  // namespace
}  // namespace ouroboros
