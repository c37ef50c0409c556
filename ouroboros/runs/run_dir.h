// The run directory: where one run keeps its log, its config and its outputs.
//
//   absl::StatusOr<std::string> dir = CreateRunDir("", "saves", "mlp_demo");
//   // saves/mlp_demo/20261125-001502  (a new directory, never reused)
//   // glog lines go there too:
//   auto log = RunLogFile::Open(RunFile(*dir, kLogFile));
#ifndef OUROBOROS_RUNS_RUN_DIR_H_
#define OUROBOROS_RUNS_RUN_DIR_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "ouroboros/base/files.h"
#include "ouroboros/runs/run_layout.h"

namespace ouroboros {

// A path the user typed, made absolute against the directory they typed it
// in: `bazel run` starts main in its runfiles directory and says where the
// user was in $BUILD_WORKING_DIRECTORY. Absolute paths stay as they are.
std::string UserPath(const std::string& path);

// If `explicit_dir` is set, creates it (it may exist but must be empty).
// Otherwise creates <base>/<run_name>/<YYYYmmdd-HHMMSS>, adding -2, -3, ...
// when that exists.
absl::StatusOr<std::string> CreateRunDir(const std::string& explicit_dir,
                                         const std::string& base,
                                         const std::string& run_name);

// One process writes a run directory: an exclusive flock(2) on
// <dir>/.lock, holding the owner's PID. The kernel drops it when the
// process ends, however it ends, so a killed run never blocks its own
// resume.
//
//   absl::StatusOr<std::unique_ptr<RunDirLock>> lock = RunDirLock::Take(dir);
//   // FailedPrecondition (exit 2) while another process holds it, naming
//   // its PID and command line. A holder about to exit (a killed job's
//   // child, which dies with its parent a moment later) is waited for, up
//   // to 1.5 s.
class RunDirLock {
 public:
  static absl::StatusOr<std::unique_ptr<RunDirLock>> Take(
      const std::string& run_dir);
  ~RunDirLock();
  RunDirLock(const RunDirLock&) = delete;
  RunDirLock& operator=(const RunDirLock&) = delete;

 private:
  explicit RunDirLock(int fd) : fd_(fd) {}
  int fd_;
};

// Copies every glog line (INFO and above) into a file while alive, each
// with its date and time (console_log.h: LogFileLine).
class RunLogFile {
 public:
  static absl::StatusOr<std::unique_ptr<RunLogFile>> Open(
      const std::string& path);
  ~RunLogFile();

  // Writes one line to the file only (not to the console), dated as the
  // glog lines are: "2026-11-29 12:19:09.751  <line>".
  void Append(const std::string& line);

 private:
  class Sink;
  explicit RunLogFile(std::unique_ptr<Sink> sink);
  std::unique_ptr<Sink> sink_;
};

}  // namespace ouroboros

#endif  // OUROBOROS_RUNS_RUN_DIR_H_
