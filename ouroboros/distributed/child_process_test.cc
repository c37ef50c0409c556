#include "ouroboros/distributed/child_process.h"

#include <signal.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ouroboros {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

std::string Scratch() {
  const char* tmp = std::getenv("TEST_TMPDIR");
  std::string dir = tmp != nullptr ? tmp : "/tmp";
  return dir;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

ChildJob Shell(const std::string& name, const std::string& script,
               double timeout_seconds = 0) {
  return {name,
          {"/bin/sh", "-c", script},
          Scratch() + "/" + name + ".out",
          timeout_seconds,
          {}};
}

TEST(ChildProcessTest, CapturesOutputAndExitCode) {
  const std::string out = Scratch() + "/capture.out";
  auto child = ChildProcess::Start(
      {"/bin/sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 3"}, out);
  ASSERT_TRUE(child.ok()) << child.status();
  while (!(*child)->Poll()) {
  }
  EXPECT_EQ((*child)->exit_code(), 3);
  EXPECT_EQ((*child)->term_signal(), 0);
  EXPECT_EQ(ReadAll(out), "to-stdout\nto-stderr\n");
}

TEST(ChildProcessTest, MissingProgramFailsWithoutHarm) {
  auto child =
      ChildProcess::Start({"/nonexistent/program"}, Scratch() + "/missing.out");
  ASSERT_TRUE(child.ok()) << child.status();
  while (!(*child)->Poll()) {
  }
  EXPECT_EQ((*child)->exit_code(), 127);
}

TEST(ChildProcessTest, UnwritableOutputIsAnError) {
  auto child = ChildProcess::Start({"/bin/true"}, "/nonexistent-dir/x.out");
  ASSERT_FALSE(child.ok());
  EXPECT_THAT(child.status().message(), HasSubstr("/nonexistent-dir/x.out"));
}

TEST(ChildPoolTest, RunsEveryJobNeverMoreThanMaxConcurrent) {
  ChildPool pool(2);
  for (int i = 0; i < 5; ++i) {
    pool.Add(Shell("job" + std::to_string(i), "sleep 0.2; echo done"));
  }
  int most_running = 0;
  pool.Run(
      [&](ChildPool& p) {
        most_running = std::max(most_running, p.CountIn(ChildState::kRunning));
      },
      std::chrono::milliseconds(20));
  EXPECT_EQ(most_running, 2);
  EXPECT_EQ(pool.CountIn(ChildState::kSucceeded), 5);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(ReadAll(pool.job(i).output_path), "done\n");
    EXPECT_GE(pool.status(i).seconds, 0.15);
  }
}

TEST(ChildPoolTest, FailureTimeoutAndStopAreTold) {
  ChildPool pool(4);
  const int ok = pool.Add(Shell("ok", "exit 0"));
  const int failing = pool.Add(Shell("failing", "exit 1"));
  const int hanging = pool.Add(Shell("hanging", "sleep 30", 0.3));
  const int stopped = pool.Add(Shell("stopped", "sleep 30"));
  const int crashing = pool.Add(Shell("crashing", "kill -9 $$"));
  const auto start = std::chrono::steady_clock::now();
  pool.Run([&](ChildPool& p) {
    if (p.Seconds(stopped) > 0.2) p.Stop(stopped);
  });
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  EXPECT_LT(seconds, 10);  // nothing waited for the 30 s sleeps
  EXPECT_EQ(pool.status(ok).state, ChildState::kSucceeded);
  EXPECT_EQ(pool.status(failing).state, ChildState::kFailed);
  EXPECT_EQ(pool.status(failing).exit_code, 1);
  EXPECT_EQ(pool.status(hanging).state, ChildState::kTimedOut);
  EXPECT_EQ(pool.status(stopped).state, ChildState::kStopped);
  EXPECT_EQ(pool.status(crashing).state, ChildState::kFailed);
  EXPECT_EQ(pool.status(crashing).term_signal, SIGKILL);
}

TEST(ChildPoolTest, SkippedAndStoppedQueuedJobsNeverRun) {
  ChildPool pool(1);
  const int skipped = pool.Add(Shell("skipped", "echo ran"));
  const int queued = pool.Add(Shell("queued", "echo ran"));
  ChildJobStatus done;
  done.state = ChildState::kSucceeded;
  pool.Skip(skipped, done);
  pool.Stop(queued);
  pool.Run(nullptr);
  EXPECT_EQ(pool.status(skipped).state, ChildState::kSucceeded);
  EXPECT_EQ(pool.status(queued).state, ChildState::kStopped);
  EXPECT_FALSE(fs::exists(pool.job(skipped).output_path));
  EXPECT_FALSE(fs::exists(pool.job(queued).output_path));
}

TEST(SelfExecutableTest, IsThisTestBinary) {
  absl::StatusOr<std::string> self = SelfExecutable();
  ASSERT_TRUE(self.ok()) << self.status();
  EXPECT_THAT(*self, HasSubstr("child_process_test"));
}

}  // namespace
}  // namespace ouroboros
