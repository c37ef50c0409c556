#include "ouroboros/distributed/child_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "ouroboros/api/registry.h"
#include "ouroboros/base/stop_signal.h"

namespace ouroboros {

std::vector<std::string> WithoutDistributedEnvironment() {
  return {"RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"};
}

namespace {

// This process's environment with `changes` ("NAME=value" sets NAME, "NAME"
// alone removes it).
std::vector<std::string> EnvironmentWith(
    const std::vector<std::string>& changes) {
  std::vector<std::string> result;
  for (char** var = environ; *var != nullptr; ++var) {
    const std::string entry = *var;
    const std::string name = entry.substr(0, entry.find('='));
    bool changed = false;
    for (const std::string& change : changes) {
      changed |= change.substr(0, change.find('=')) == name;
    }
    if (!changed) result.push_back(entry);
  }
  for (const std::string& change : changes) {
    if (change.find('=') != std::string::npos) result.push_back(change);
  }
  return result;
}

// execve's argument and environment arrays, pointing into `strings`.
std::vector<char*> NullTerminated(const std::vector<std::string>& strings) {
  std::vector<char*> pointers;
  for (const std::string& text : strings) {
    pointers.push_back(const_cast<char*>(text.c_str()));
  }
  pointers.push_back(nullptr);
  return pointers;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ChildProcess>> ChildProcess::Start(
    const std::vector<std::string>& argv, const std::string& output_path,
    const std::vector<std::string>& environment) {
  if (argv.empty()) return absl::InvalidArgumentError("no program to run");
  // Everything the child needs is prepared before fork(): after it, in a
  // process with threads, only async-signal-safe calls are allowed.
  std::vector<char*> args = NullTerminated(argv);
  const std::vector<std::string> env_strings = EnvironmentWith(environment);
  std::vector<char*> env = NullTerminated(env_strings);
  const int output = output_path.empty()
                         ? dup(STDOUT_FILENO)
                         : open(output_path.c_str(),
                                O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  const int error_output = output_path.empty() ? dup(STDERR_FILENO) : output;
  if (output < 0) {
    return absl::UnavailableError(absl::StrCat(output_path, ": cannot create (",
                                               std::strerror(errno), ")"));
  }
  const int null_input = open("/dev/null", O_RDONLY | O_CLOEXEC);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) {
    int error = errno;
    close(output);
    if (null_input >= 0) close(null_input);
    return absl::ResourceExhaustedError(
        absl::StrCat("fork failed: ", std::strerror(error)));
  }
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);  // the parent died before prctl
    // Signals from the terminal go to the parent alone, which forwards them.
    setpgid(0, 0);
    if (null_input >= 0) dup2(null_input, STDIN_FILENO);
    dup2(output, STDOUT_FILENO);
    dup2(error_output, STDERR_FILENO);
    execve(args[0], args.data(), env.data());
    const char message[] = "exec failed\n";
    (void)!write(STDERR_FILENO, message, sizeof(message) - 1);
    _exit(127);
  }
  close(output);
  if (error_output != output) close(error_output);
  if (null_input >= 0) close(null_input);
  return std::unique_ptr<ChildProcess>(new ChildProcess(pid));
}

ChildProcess::ChildProcess(pid_t pid)
    : pid_(pid), start_(std::chrono::steady_clock::now()) {}

ChildProcess::~ChildProcess() {
  if (!ended_) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
}

bool ChildProcess::Poll() {
  if (ended_) return true;
  int status = 0;
  pid_t result = waitpid(pid_, &status, WNOHANG);
  if (result == 0) return false;
  ended_ = true;
  end_ = std::chrono::steady_clock::now();
  if (result < 0) return true;  // already reaped elsewhere: unknown outcome
  if (WIFEXITED(status)) exit_code_ = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) term_signal_ = WTERMSIG(status);
  return true;
}

void ChildProcess::Signal(int signal_number) {
  if (!ended_) kill(pid_, signal_number);
}

double ChildProcess::ElapsedSeconds() const {
  auto end = ended_ ? end_ : std::chrono::steady_clock::now();
  return std::chrono::duration<double>(end - start_).count();
}

const char* ChildStateName(ChildState state) {
  switch (state) {
    case ChildState::kQueued:
      return "queued";
    case ChildState::kRunning:
      return "running";
    case ChildState::kSucceeded:
      return "succeeded";
    case ChildState::kFailed:
      return "failed";
    case ChildState::kTimedOut:
      return "timed out";
    case ChildState::kStopped:
      return "stopped";
    case ChildState::kInterrupted:
      return "interrupted";
  }
  return "?";
}

ChildPool::ChildPool(int max_concurrent)
    : max_concurrent_(std::max(1, max_concurrent)) {}

ChildPool::~ChildPool() = default;

int ChildPool::Add(ChildJob job) {
  jobs_.push_back(std::move(job));
  statuses_.emplace_back();
  processes_.emplace_back();
  stop_requested_.push_back(false);
  return size() - 1;
}

void ChildPool::Skip(int index, ChildJobStatus status) {
  statuses_[index] = std::move(status);
}

void ChildPool::Stop(int index) {
  stop_requested_[index] = true;
  ChildJobStatus& status = statuses_[index];
  if (status.state == ChildState::kQueued) {
    status.state = ChildState::kStopped;
  } else if (status.state == ChildState::kRunning && !interrupted_) {
    // After a forwarded stop signal, another one would kill the child.
    processes_[index]->Signal(SIGTERM);
  }
}

double ChildPool::Seconds(int index) const {
  if (statuses_[index].state == ChildState::kRunning) {
    return processes_[index]->ElapsedSeconds();
  }
  return statuses_[index].seconds;
}

int ChildPool::CountIn(ChildState state) const {
  int count = 0;
  for (const ChildJobStatus& status : statuses_) count += status.state == state;
  return count;
}

void ChildPool::StartQueued() {
  if (interrupted_) return;
  for (int i = 0; i < size() && CountIn(ChildState::kRunning) < max_concurrent_;
       ++i) {
    ChildJobStatus& status = statuses_[i];
    if (status.state != ChildState::kQueued) continue;
    absl::StatusOr<std::unique_ptr<ChildProcess>> process = ChildProcess::Start(
        jobs_[i].argv, jobs_[i].output_path, jobs_[i].environment);
    if (!process.ok()) {
      status.state = ChildState::kFailed;
      status.error = std::string(process.status().message());
      continue;
    }
    processes_[i] = *std::move(process);
    status.state = ChildState::kRunning;
  }
}

void ChildPool::Reap() {
  for (int i = 0; i < size(); ++i) {
    ChildJobStatus& status = statuses_[i];
    if (status.state != ChildState::kRunning) continue;
    ChildProcess& process = *processes_[i];
    const double timeout = jobs_[i].timeout_seconds;
    if (!process.Poll()) {
      if (timeout > 0 && process.ElapsedSeconds() > timeout) {
        process.Signal(SIGKILL);
        waitpid(process.pid(), nullptr, 0);
        process.Poll();
        status.state = ChildState::kTimedOut;
        status.seconds = process.ElapsedSeconds();
      }
      continue;
    }
    status.exit_code = process.exit_code();
    status.term_signal = process.term_signal();
    status.seconds = process.ElapsedSeconds();
    if (interrupted_) {
      status.state = process.exit_code() == 0 ? ChildState::kSucceeded
                                              : ChildState::kInterrupted;
    } else if (stop_requested_[i]) {
      status.state = ChildState::kStopped;
    } else if (process.exit_code() == 0) {
      status.state = ChildState::kSucceeded;
    } else {
      status.state = ChildState::kFailed;
    }
    processes_[i].reset();
  }
}

void ChildPool::Run(const std::function<void(ChildPool&)>& on_tick,
                    std::chrono::milliseconds tick) {
  while (true) {
    if (StopSignal() != 0) {
      for (int i = 0; i < size(); ++i) {
        if (statuses_[i].state == ChildState::kQueued) {
          statuses_[i].state = ChildState::kInterrupted;
        } else if (statuses_[i].state == ChildState::kRunning &&
                   !interrupted_) {
          // Once: a second signal would end the child at once.
          processes_[i]->Signal(StopSignal());
        }
      }
      interrupted_ = true;
    }
    Reap();
    // Before the end check: a tick may Add() more jobs.
    if (on_tick) on_tick(*this);
    StartQueued();
    if (CountIn(ChildState::kRunning) == 0 &&
        CountIn(ChildState::kQueued) == 0) {
      break;
    }
    std::this_thread::sleep_for(tick);
  }
}

absl::StatusOr<std::string> SelfExecutable() {
  std::error_code ec;
  std::filesystem::path self =
      std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("/proc/self/exe: cannot read (", ec.message(), ")"));
  }
  return self.string();
}

std::vector<std::string> PluginDirFlags(const PluginRegistry& registry) {
  std::set<std::string> dirs;
  for (const RegisteredPlugin& plugin : registry.List()) {
    if (plugin.source.empty()) continue;
    dirs.insert(std::filesystem::path(plugin.source).parent_path().string());
  }
  if (dirs.empty()) return {};
  return {absl::StrCat("--plugin_dir=", absl::StrJoin(dirs, ","))};
}

}  // namespace ouroboros
