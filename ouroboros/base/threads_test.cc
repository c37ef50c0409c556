#include "ouroboros/base/threads.h"

#include <ATen/Parallel.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <thread>

namespace ouroboros {
namespace {

using ::testing::HasSubstr;

TEST(ChooseThreadsTest, AnExplicitCountIsForBothPools) {
  const ThreadChoice choice = ChooseThreads(/*requested=*/3, /*local_ranks=*/1);
  EXPECT_EQ(choice.threads, 3);
  EXPECT_EQ(choice.blas_threads, 3);
  EXPECT_EQ(choice.why, "--threads");
}

TEST(ChooseThreadsTest, OneCorePerRankIsOneThread) {
  const int cores = static_cast<int>(std::thread::hardware_concurrency());
  const ThreadChoice choice = ChooseThreads(0, /*local_ranks=*/cores);
  EXPECT_EQ(choice.threads, 1);
  EXPECT_EQ(choice.blas_threads, 1);
}

// Whatever the machine's load makes the probe find: it reports both
// speedups, and two separate pools never both get more than one thread.
TEST(ChooseThreadsTest, TheProbeNeverSetsTwoPoolsAgainstEachOther) {
  if (std::thread::hardware_concurrency() < 2) GTEST_SKIP() << "one core";
  const ThreadChoice choice = ChooseThreads(0, 1);
  EXPECT_NE(choice.why.find("element-wise loops"), std::string::npos)
      << choice.why;
  EXPECT_NE(choice.why.find("matrix products"), std::string::npos)
      << choice.why;
  if (BlasSharesOpenMpPool()) {
    // One pool: its products cannot have more threads than OpenMP.
    EXPECT_LE(choice.blas_threads, choice.threads) << choice.why;
  } else {
    EXPECT_FALSE(choice.threads > 1 && choice.blas_threads > 1) << choice.why;
  }
}

// Both counts stick, in either order of size (OpenBLAS's OpenMP build
// resets the OpenMP count when its own is set, so the order matters).
TEST(ThreadsForSpeedupsTest, NeitherScalingIsOneThreadEach) {
  const ThreadChoice choice = ThreadsForSpeedups(2, {1.1, 1.2}, true);
  EXPECT_EQ(choice.threads, 1);
  EXPECT_EQ(choice.blas_threads, 1);
  EXPECT_THAT(choice.why, HasSubstr("1.10x as fast as 1 on element-wise "
                                    "loops, 1.20x on matrix products"));
  EXPECT_THAT(choice.why, HasSubstr("busy or not scaling"));
}

TEST(ThreadsForSpeedupsTest, OnePoolGivesEachKindTheCoresIfItScales) {
  ThreadChoice choice = ThreadsForSpeedups(4, {1.9, 1.0}, true);
  EXPECT_EQ(choice.threads, 4);
  EXPECT_EQ(choice.blas_threads, 1);
  choice = ThreadsForSpeedups(4, {1.9, 1.7}, true);
  EXPECT_EQ(choice.threads, 4);
  EXPECT_EQ(choice.blas_threads, 4);
}

TEST(ThreadsForSpeedupsTest, TwoPoolsGiveTheCoresOnlyToTheBetterScaling) {
  ThreadChoice choice = ThreadsForSpeedups(2, {1.5, 1.8}, false);
  EXPECT_EQ(choice.threads, 1);
  EXPECT_EQ(choice.blas_threads, 2);
  EXPECT_THAT(choice.why, HasSubstr("OpenBLAS gets the cores"));
  choice = ThreadsForSpeedups(2, {1.8, 1.5}, false);
  EXPECT_EQ(choice.threads, 2);
  EXPECT_EQ(choice.blas_threads, 1);
  EXPECT_THAT(choice.why, HasSubstr("OpenMP gets the cores"));
  // At the threshold a pool counts as scaling.
  choice = ThreadsForSpeedups(2, {kProbeSpeedup, 1.0}, false);
  EXPECT_EQ(choice.threads, 2);
}

TEST(SetThreadsTest, SetsEachPool) {
  if (std::getenv("OPENBLAS_NUM_THREADS") != nullptr) {
    GTEST_SKIP() << "OPENBLAS_NUM_THREADS is set";
  }
  SetThreads(2, 1);
  EXPECT_EQ(at::get_num_threads(), 2);
  EXPECT_EQ(DescribeThreads(), "OpenMP 2, OpenBLAS 1");
  SetThreads(1, 1);
  EXPECT_EQ(DescribeThreads(), "OpenMP 1, OpenBLAS 1");
  SetThreads(2);
  EXPECT_EQ(DescribeThreads(), "OpenMP 2, OpenBLAS 2");
}

}  // namespace
}  // namespace ouroboros
