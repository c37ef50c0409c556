#include "ouroboros/base/console_log.h"

#include <cstdio>

#include "absl/strings/str_format.h"

namespace ouroboros {
namespace {

bool Verbose() { return FLAGS_v > 0; }

class ConsoleSink : public google::LogSink {
 public:
  void send(google::LogSeverity severity, const char* /*full_filename*/,
            const char* base_filename, int line,
            const google::LogMessageTime& time, const char* message,
            size_t message_len) override {
    const std::string text =
        ConsoleLine(severity, base_filename, line, time, message, message_len);
    std::fprintf(stderr, "%s\n", text.c_str());
  }
};

}  // namespace

std::string ConsoleLine(google::LogSeverity severity, const char* base_filename,
                        int line, const google::LogMessageTime& time,
                        const char* message, size_t message_len) {
  if (severity == google::GLOG_INFO && !Verbose()) {
    return std::string(message, message_len);
  }
  return google::LogSink::ToString(severity, base_filename, line, time, message,
                                   message_len);
}

std::string LogFileLine(google::LogSeverity severity, const char* base_filename,
                        int line, const google::LogMessageTime& time,
                        const char* message, size_t message_len) {
  return absl::StrFormat(
      "%04d-%02d-%02d %02d:%02d:%02d.%03d  %s", time.year() + 1900,
      time.month() + 1, time.day(), time.hour(), time.min(), time.sec(),
      time.usec() / 1000,
      ConsoleLine(severity, base_filename, line, time, message, message_len));
}

void InstallConsoleLog() {
  static ConsoleSink* sink = nullptr;
  if (sink != nullptr) return;
  FLAGS_logtostderr = false;
  FLAGS_alsologtostderr = false;
  // glog's own copy to stderr: never (the sink prints every line).
  FLAGS_stderrthreshold = google::NUM_SEVERITIES;
  // No log files in /tmp: an empty base name turns them off.
  for (int severity = 0; severity < google::NUM_SEVERITIES; ++severity) {
    google::SetLogDestination(severity, "");
  }
  sink = new ConsoleSink;
  google::AddLogSink(sink);
}

}  // namespace ouroboros
