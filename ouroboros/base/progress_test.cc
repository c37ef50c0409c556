#include "ouroboros/base/progress.h"

#include <unistd.h>

#include <string>
#include <vector>

#include "glog/logging.h"
#include "gtest/gtest.h"

namespace ouroboros {
namespace {

// Keeps the INFO lines logged while alive.
class LinesLogged : public google::LogSink {
 public:
  LinesLogged() { google::AddLogSink(this); }
  ~LinesLogged() override { google::RemoveLogSink(this); }
  void send(google::LogSeverity severity, const char* /*full_filename*/,
            const char* /*base_filename*/, int /*line*/,
            const google::LogMessageTime& /*time*/, const char* message,
            size_t message_len) override {
    if (severity == google::GLOG_INFO) lines.emplace_back(message, message_len);
  }
  std::vector<std::string> lines;
};

TEST(ProgressBarTest, WithoutATerminalItLogsALineAtEveryTenth) {
  if (isatty(STDERR_FILENO)) GTEST_SKIP() << "stderr is a terminal";
  LinesLogged logged;
  {
    ProgressBar bar("epoch 2/3", /*total=*/20);
    for (int done = 1; done <= 20; ++done) bar.Update(done, "loss 0.5");
  }
  ASSERT_EQ(logged.lines.size(), 10u);
  EXPECT_EQ(logged.lines.front().rfind("epoch 2/3  10% 2/20 [", 0), 0u)
      << logged.lines.front();
  EXPECT_EQ(logged.lines.back().rfind("epoch 2/3 100% 20/20 [", 0), 0u)
      << logged.lines.back();
  EXPECT_NE(logged.lines.back().find("] loss 0.5"), std::string::npos);
}

TEST(ProgressBarTest, AResumedEpochStartsPartWay) {
  if (isatty(STDERR_FILENO)) GTEST_SKIP() << "stderr is a terminal";
  LinesLogged logged;
  {
    ProgressBar bar("epoch 1/1", /*total=*/10, /*start=*/6);
    for (int done = 7; done <= 10; ++done) bar.Update(done, "");
  }
  ASSERT_FALSE(logged.lines.empty());
  EXPECT_EQ(logged.lines.front().rfind("epoch 1/1  70% 7/10", 0), 0u)
      << logged.lines.front();
}

TEST(ProgressBarTest, DurationsReadAsAClock) {
  EXPECT_EQ(ProgressBar::FormatDuration(123), "2:03");
  EXPECT_EQ(ProgressBar::FormatDuration(3723), "1:02:03");
  EXPECT_EQ(ProgressBar::FormatDuration(0), "0:00");
}

}  // namespace
}  // namespace ouroboros
