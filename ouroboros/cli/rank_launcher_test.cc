#include "ouroboros/cli/rank_launcher.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ouroboros {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(RankLauncherTest, RankCommandDropsNprocAndRunDirInBothSpellings) {
  EXPECT_THAT(RankCommand("/bin/main",
                          {"--model=mlp", "--nproc=2", "--run_dir", "/old",
                           "-nproc", "3", "-run_dir=/older", "--set=seed=2"},
                          "/runs/a"),
              ElementsAre("/bin/main", "--model=mlp", "--set=seed=2",
                          "--run_dir=/runs/a"));
  // Resuming: each rank finds the run from --resume.
  EXPECT_THAT(RankCommand("/bin/main", {"--resume=/runs/a", "--nproc=2"}, ""),
              ElementsAre("/bin/main", "--resume=/runs/a"));
}

// The ranks are real processes: a shell that checks the variables a rank
// is given.
std::vector<std::string> Shell(const std::string& script) {
  return {"/bin/sh", "-c", script};
}

TEST(RankLauncherTest, GivesEveryRankItsPlaceInTheJob) {
  EXPECT_TRUE(LaunchRanks(Shell("test \"$WORLD_SIZE\" = 3 && "
                                "test \"$LOCAL_WORLD_SIZE\" = 3 && "
                                "test \"$RANK\" = \"$LOCAL_RANK\" && "
                                "test \"$RANK\" -ge 0 && test \"$RANK\" -lt 3 "
                                "&& test \"$MASTER_ADDR\" = 127.0.0.1 && "
                                "test \"$MASTER_PORT\" -gt 0"),
                          3, "/runs/a")
                  .ok());
}

TEST(RankLauncherTest, NamesTheRankThatFailed) {
  const absl::Status failed =
      LaunchRanks(Shell("test \"$RANK\" != 1 || exit 5"), 2, "/runs/a");
  EXPECT_EQ(failed.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(std::string(failed.message()),
              HasSubstr("rank 1 exited with code 5"));
}

TEST(RankLauncherTest, ARanksBadInputIsBadInput) {
  const absl::Status failed =
      LaunchRanks(Shell("test \"$RANK\" != 0 || exit 2"), 2, "/runs/a");
  EXPECT_EQ(failed.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(failed.message()),
              HasSubstr("rank 0 exited with code 2"));
}

TEST(RankLauncherTest, NamesTheSignalThatKilledARank) {
  const absl::Status failed =
      LaunchRanks(Shell("test \"$RANK\" != 1 || kill -KILL $$"), 2, "/runs/a");
  EXPECT_THAT(std::string(failed.message()),
              HasSubstr("rank 1 was killed by signal 9"));
}

}  // namespace
}  // namespace ouroboros
