#include "ouroboros/base/stop_signal.h"

#include <csignal>
#include <string>

#include "gtest/gtest.h"
#include "ouroboros/base/errors.h"

namespace ouroboros {
namespace {

TEST(StopSignalTest, ARealSigtermOnlySetsTheFlag) {
  ClearStopRequest();
  InstallStopSignalHandlers();
  InstallStopSignalHandlers();  // idempotent
  ASSERT_EQ(StopSignal(), 0);
  // The process lives on: the loop reads the flag after its step.
  ASSERT_EQ(std::raise(SIGTERM), 0);
  EXPECT_EQ(StopSignal(), SIGTERM);
  EXPECT_EQ(StopExitCode(), 128 + SIGTERM);
  ClearStopRequest();
  EXPECT_EQ(StopSignal(), 0);
}

TEST(StopSignalTest, ARequestedStopReadsAsTheShellsExitCode) {
  ClearStopRequest();
  EXPECT_EQ(StopExitCode(), 130);  // none recorded
  RequestStop(SIGINT);
  const absl::Status stopped = StoppedBySignal("after step 12");
  EXPECT_EQ(stopped.code(), absl::StatusCode::kCancelled);
  EXPECT_NE(std::string(stopped.message()).find("after step 12"),
            std::string::npos)
      << stopped;
  EXPECT_EQ(ExitCodeFor(stopped), 128 + SIGINT);
  ClearStopRequest();
}

}  // namespace
}  // namespace ouroboros
