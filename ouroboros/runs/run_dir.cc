#include "ouroboros/runs/run_dir.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <system_error>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "glog/logging.h"
#include "ouroboros/base/console_log.h"

namespace ouroboros {
namespace fs = std::filesystem;

std::string UserPath(const std::string& path) {
  if (path.empty() || path.front() == '/') return path;
  const char* cwd = getenv("BUILD_WORKING_DIRECTORY");
  if (cwd == nullptr || *cwd == '\0') return path;
  return (std::filesystem::path(cwd) / path).string();
}

absl::StatusOr<std::string> CreateRunDir(const std::string& explicit_dir,
                                         const std::string& base,
                                         const std::string& run_name) {
  std::error_code ec;
  if (!explicit_dir.empty()) {
    fs::create_directories(explicit_dir, ec);
    if (ec) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--run_dir=", explicit_dir, ": cannot create: ", ec.message()));
    }
    if (!fs::is_empty(explicit_dir, ec)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--run_dir=", explicit_dir,
          ": directory is not empty; refusing to mix two runs' outputs"));
    }
    return explicit_dir;
  }
  std::time_t now = std::time(nullptr);
  std::tm local;
  localtime_r(&now, &local);
  char stamp[32];
  std::strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", &local);
  fs::path parent = fs::path(base) / (run_name.empty() ? "run" : run_name);
  fs::create_directories(parent, ec);
  if (ec) {
    return absl::InvalidArgumentError(absl::StrCat(
        parent.string(), ": cannot create run directory: ", ec.message()));
  }
  for (int attempt = 1; attempt < 1000; ++attempt) {
    fs::path dir = parent / (attempt == 1 ? std::string(stamp)
                                          : absl::StrCat(stamp, "-", attempt));
    // create_directory returns false when it already exists: try the next.
    if (fs::create_directory(dir, ec)) return dir.string();
    if (ec) {
      return absl::InvalidArgumentError(absl::StrCat(
          dir.string(), ": cannot create run directory: ", ec.message()));
    }
  }
  return absl::AlreadyExistsError(
      absl::StrCat(parent.string(), ": too many runs started this second"));
}

absl::StatusOr<std::unique_ptr<RunDirLock>> RunDirLock::Take(
    const std::string& run_dir) {
  const std::string path = RunFile(run_dir, kLockFile);
  // O_CLOEXEC: children (trials, ranks) must not inherit the lock.
  const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    return absl::UnavailableError(
        absl::StrCat(path, ": cannot open: ", std::strerror(errno)));
  }
  // A holder that is being killed (a child of a killed tune or parallel
  // job gets SIGKILL when its parent dies, a moment later) lets go at its
  // exit: a resume started at once waits for that instead of refusing.
  bool locked = flock(fd, LOCK_EX | LOCK_NB) == 0;
  for (int wait = 0; !locked && wait < 30; ++wait) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    locked = flock(fd, LOCK_EX | LOCK_NB) == 0;
  }
  if (!locked) {
    std::string holder;
    char text[32] = {};
    if (pread(fd, text, sizeof(text) - 1, 0) > 0) holder = text;
    close(fd);
    holder = std::string(absl::StripAsciiWhitespace(holder));
    std::string command;
    std::ifstream cmdline("/proc/" + holder + "/cmdline");
    std::getline(cmdline, command, '\0');
    for (std::string arg; std::getline(cmdline, arg, '\0');) {
      absl::StrAppend(&command, " ", arg);
    }
    return absl::FailedPreconditionError(absl::StrCat(
        run_dir, ": in use by process ",
        holder.empty() ? std::string("(unknown)") : holder,
        command.empty() ? "" : absl::StrCat(" (", command, ")"),
        "; one process writes a run directory at a time (wait for it, or "
        "stop it: it checkpoints on SIGTERM)"));
  }
  const std::string pid = absl::StrCat(getpid(), "\n");
  if (ftruncate(fd, 0) != 0 || pwrite(fd, pid.data(), pid.size(), 0) < 0) {
    LOG(WARNING) << path << ": cannot record this process's PID";
  }
  return std::unique_ptr<RunDirLock>(new RunDirLock(fd));
}

RunDirLock::~RunDirLock() { close(fd_); }

class RunLogFile::Sink : public google::LogSink {
 public:
  explicit Sink(std::ofstream out) : out_(std::move(out)) {}
  void send(google::LogSeverity severity, const char* /*full_filename*/,
            const char* base_filename, int line,
            const google::LogMessageTime& time, const char* message,
            size_t message_len) override {
    Write(
        LogFileLine(severity, base_filename, line, time, message, message_len));
  }

  void Write(const std::string& line) {
    std::lock_guard<std::mutex> lock(mu_);
    out_ << line << '\n';
    out_.flush();
  }

 private:
  std::mutex mu_;
  std::ofstream out_;
};

RunLogFile::RunLogFile(std::unique_ptr<Sink> sink) : sink_(std::move(sink)) {
  google::AddLogSink(sink_.get());
}

RunLogFile::~RunLogFile() { google::RemoveLogSink(sink_.get()); }

void RunLogFile::Append(const std::string& line) {
  // Dated as the glog lines around it (LogFileLine: local time, ms).
  sink_->Write(absl::StrCat(absl::FormatTime("%Y-%m-%d %H:%M:%E3S", absl::Now(),
                                             absl::LocalTimeZone()),
                            "  ", line));
}

absl::StatusOr<std::unique_ptr<RunLogFile>> RunLogFile::Open(
    const std::string& path) {
  std::ofstream out(path, std::ios::app);
  if (!out) {
    return absl::UnavailableError(
        absl::StrCat(path, ": cannot open log file: ", std::strerror(errno)));
  }
  return std::unique_ptr<RunLogFile>(
      new RunLogFile(std::make_unique<Sink>(std::move(out))));
}

}  // namespace ouroboros
