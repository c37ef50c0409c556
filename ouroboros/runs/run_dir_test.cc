#include "ouroboros/runs/run_dir.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "gtest/gtest.h"
#include "ouroboros/runs/run_layout.h"

namespace ouroboros {
namespace {

namespace fs = std::filesystem;

std::string FreshDir(const std::string& name) {
  const std::string dir = std::string(std::getenv("TEST_TMPDIR")) + "/" + name;
  fs::remove_all(dir);
  return dir;
}

TEST(RunDirTest, UserPathsAreMadeAbsoluteWhereTheUserWas) {
  setenv("BUILD_WORKING_DIRECTORY", "/home/researcher", 1);
  EXPECT_EQ(UserPath("configs/mlp.json"), "/home/researcher/configs/mlp.json");
  EXPECT_EQ(UserPath("/abs/mlp.json"), "/abs/mlp.json");
  unsetenv("BUILD_WORKING_DIRECTORY");
  EXPECT_EQ(UserPath("configs/mlp.json"), "configs/mlp.json");
}

TEST(RunDirTest, AnExplicitDirectoryMustBeEmpty) {
  const std::string dir = FreshDir("explicit");
  absl::StatusOr<std::string> created = CreateRunDir(dir, "unused", "x");
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ(*created, dir);
  std::ofstream(dir + "/log.txt") << "an earlier run\n";
  created = CreateRunDir(dir, "unused", "x");
  ASSERT_FALSE(created.ok());
  EXPECT_EQ(std::string(created.status().message()),
            "--run_dir=" + dir +
                ": directory is not empty; refusing to mix two runs' outputs");
}

TEST(RunDirTest, NamedRunsNeverShareADirectory) {
  const std::string base = FreshDir("saves");
  absl::StatusOr<std::string> first = CreateRunDir("", base, "mlp_demo");
  absl::StatusOr<std::string> second = CreateRunDir("", base, "mlp_demo");
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_NE(*first, *second);
  EXPECT_EQ(fs::path(*first).parent_path(), fs::path(base) / "mlp_demo");
  EXPECT_EQ(fs::path(*second).parent_path(), fs::path(base) / "mlp_demo");
}

TEST(RunDirTest, OneProcessWritesARunDirectory) {
  const std::string dir = FreshDir("locked");
  fs::create_directories(dir);
  {
    absl::StatusOr<std::unique_ptr<RunDirLock>> lock = RunDirLock::Take(dir);
    ASSERT_TRUE(lock.ok()) << lock.status();
    // A second holder (here the same process through another open file) is
    // refused while the first lives, naming the holder's PID.
    absl::StatusOr<std::unique_ptr<RunDirLock>> again = RunDirLock::Take(dir);
    ASSERT_FALSE(again.ok());
    EXPECT_EQ(again.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_NE(
        std::string(again.status().message()).find(std::to_string(getpid())),
        std::string::npos)
        << again.status();
  }
  EXPECT_TRUE(RunDirLock::Take(dir).ok());
}

TEST(RunDirTest, TheLogFileGetsDatedLines) {
  const std::string dir = FreshDir("log");
  fs::create_directories(dir);
  const std::string path = RunFile(dir, kLogFile);
  {
    absl::StatusOr<std::unique_ptr<RunLogFile>> log = RunLogFile::Open(path);
    ASSERT_TRUE(log.ok()) << log.status();
    (*log)->Append("only in the file");
  }
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  // "2026-11-29 12:19:09.751  only in the file"
  const std::string line = text.str();
  ASSERT_GE(line.size(), 25u) << line;
  EXPECT_EQ(line[4], '-');
  EXPECT_EQ(line.substr(23), "  only in the file\n");
}

}  // namespace
}  // namespace ouroboros
