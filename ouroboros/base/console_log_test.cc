#include "ouroboros/base/console_log.h"

#include <ctime>
#include <string>

#include "glog/logging.h"
#include "gtest/gtest.h"

namespace ouroboros {
namespace {

// 2026-11-29 12:19:09.25 local time. (glog's LogMessageTime(std::tm) leaves
// the microseconds unset, so the time goes in as a timestamp.)
google::LogMessageTime NoonTime() {
  std::tm when = {};
  when.tm_year = 2026 - 1900;
  when.tm_mon = 10;
  when.tm_mday = 29;
  when.tm_hour = 12;
  when.tm_min = 19;
  when.tm_sec = 9;
  when.tm_isdst = -1;
  const std::time_t timestamp = std::mktime(&when);
  return google::LogMessageTime(timestamp, timestamp + 0.25);
}

TEST(ConsoleLogTest, InfoReadsAsAPlainLine) {
  const std::string message = "epoch 1/2: step 6, train loss 1.0";
  EXPECT_EQ(ConsoleLine(google::GLOG_INFO, "trainer.cc", 12, NoonTime(),
                        message.data(), message.size()),
            message);
}

TEST(ConsoleLogTest, WarningsKeepWhereTheyCameFrom) {
  const std::string message = "TensorBoard: disk full";
  const std::string line =
      ConsoleLine(google::GLOG_WARNING, "trainer.cc", 309, NoonTime(),
                  message.data(), message.size());
  EXPECT_EQ(line.substr(0, 9), "W20261129");
  EXPECT_NE(line.find("trainer.cc:309] TensorBoard: disk full"),
            std::string::npos)
      << line;
}

TEST(ConsoleLogTest, VerboseModeKeepsThePrefixOnInfoToo) {
  FLAGS_v = 1;
  const std::string message = "hello";
  const std::string line =
      ConsoleLine(google::GLOG_INFO, "main.cc", 3, NoonTime(), message.data(),
                  message.size());
  FLAGS_v = 0;
  EXPECT_EQ(line.substr(0, 9), "I20261129");
}

TEST(ConsoleLogTest, LogFileLinesStartWithTheDateAndTime) {
  const std::string message = "test: accuracy 0.91";
  EXPECT_EQ(LogFileLine(google::GLOG_INFO, "trainer.cc", 406, NoonTime(),
                        message.data(), message.size()),
            "2026-11-29 12:19:09.250  test: accuracy 0.91");
}

}  // namespace
}  // namespace ouroboros
