// How log lines read, on the console and in a run's log.txt.
//
// Progress and results read as plain lines, the way PyTorch Lightning prints
// them:
//   epoch 1/2  50% 3/6 [0:00<0:00, 184.6 it/s] loss 1.1285 lr 0.01
// Warnings and errors keep glog's prefix (severity, time, file and line),
// because where they come from helps:
//   W20261129 12:19:09.751492  9243 trainer.cc:309] TensorBoard: ...
// In verbose mode (GLOG_v=1 or higher) every line keeps the prefix. log.txt
// (run_dir.h) starts every line with the date and time instead, so a run
// can be read back against the clock.
//
//   google::InitGoogleLogging(argv[0]);
//   InstallConsoleLog();   // once, instead of FLAGS_logtostderr
#ifndef OUROBOROS_BASE_CONSOLE_LOG_H_
#define OUROBOROS_BASE_CONSOLE_LOG_H_

#include <cstddef>
#include <string>

#include "glog/logging.h"

namespace ouroboros {

// Sends every log line to stderr in the format above; glog itself writes
// neither to stderr nor to log files.
void InstallConsoleLog();

// One log line as the console shows it.
std::string ConsoleLine(google::LogSeverity severity, const char* base_filename,
                        int line, const google::LogMessageTime& time,
                        const char* message, size_t message_len);

// One log line as log.txt keeps it: "2026-11-29 12:19:09.751  <console line>".
std::string LogFileLine(google::LogSeverity severity, const char* base_filename,
                        int line, const google::LogMessageTime& time,
                        const char* message, size_t message_len);

}  // namespace ouroboros

#endif  // OUROBOROS_BASE_CONSOLE_LOG_H_
