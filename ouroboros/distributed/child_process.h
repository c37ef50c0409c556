// Child processes for pipelines that run other runs: a tune's trials, the
// pipelines of a parallel job. Each child is usually main itself, started
// with its own config and run directory, its console output in a file.
//
//   ChildPool pool(/*max_concurrent=*/2);
//   pool.Add({"trial-000", {SelfExecutable(), "--config=t0.json", ...},
//             "trials/trial-000.out", /*timeout_seconds=*/600});
//   pool.Run([&](ChildPool& p) { /* every ~0.2 s: look, maybe p.Stop(i) */ });
//   if (pool.job(0).state == ChildState::kSucceeded) ...
//
// Children die with their parent (PR_SET_PDEATHSIG), so a killed tune leaves
// no orphan trials behind. Each child has a process group of its own, so a
// Ctrl-C at the terminal reaches only the parent; when the parent receives
// SIGTERM or SIGINT (stop_signal.h), ChildPool::Run forwards it once to every
// running child, starts no more, and waits for them to stop cleanly.
#ifndef OUROBOROS_DISTRIBUTED_CHILD_PROCESS_H_
#define OUROBOROS_DISTRIBUTED_CHILD_PROCESS_H_

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace ouroboros {

class PluginRegistry;

// An environment change (for ChildProcess::Start, ChildJob) that unsets the
// variables torchrun sets: a child that is not a rank of this job must not
// inherit them (a tune inside a distributed run starts plain trials).
std::vector<std::string> WithoutDistributedEnvironment();

// One running program. Its stdout and stderr go to `output_path` (empty:
// this process's own); its stdin is /dev/null. `environment` changes this
// process's environment for the child: "NAME=value" sets, "NAME" unsets.
class ChildProcess {
 public:
  static absl::StatusOr<std::unique_ptr<ChildProcess>> Start(
      const std::vector<std::string>& argv, const std::string& output_path,
      const std::vector<std::string>& environment = {});
  // Kills (SIGKILL) and reaps the child if it is still running.
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // True once the child has ended; never blocks.
  bool Poll();
  void Signal(int signal_number);
  pid_t pid() const { return pid_; }
  // After Poll() returned true: the exit code, or -1 if a signal ended it.
  int exit_code() const { return exit_code_; }
  // The signal that ended it, or 0.
  int term_signal() const { return term_signal_; }
  double ElapsedSeconds() const;

 private:
  explicit ChildProcess(pid_t pid);
  pid_t pid_;
  bool ended_ = false;
  int exit_code_ = -1;
  int term_signal_ = 0;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point end_;
};

enum class ChildState {
  kQueued,
  kRunning,
  kSucceeded,    // exit code 0
  kFailed,       // a non-zero exit code, a signal, or it could not start
  kTimedOut,     // ran past its timeout and was killed
  kStopped,      // stopped on purpose (ChildPool::Stop), e.g. early stopping
  kInterrupted,  // ended by the stop signal the parent forwarded, or never
                 // started because of it: resumable, not finished
};

// "queued", "running", "succeeded", "failed", "timed out", "stopped",
// "interrupted".
const char* ChildStateName(ChildState state);

struct ChildJob {
  std::string name;
  std::vector<std::string> argv;
  std::string output_path;
  double timeout_seconds = 0;            // 0: none
  std::vector<std::string> environment;  // as for ChildProcess::Start
};

struct ChildJobStatus {
  ChildState state = ChildState::kQueued;
  int exit_code = -1;
  int term_signal = 0;
  double seconds = 0;
  std::string error;  // why it could not start
};

// Runs jobs in the order added, at most max_concurrent at a time.
class ChildPool {
 public:
  explicit ChildPool(int max_concurrent);
  ~ChildPool();

  // Returns the job's index.
  int Add(ChildJob job);
  // Marks a job done without running it (e.g. completed before a resume).
  void Skip(int index, ChildJobStatus status);
  // Starts and reaps jobs until every one has ended, calling on_tick about
  // every `tick` (and last after the final job ended); on_tick may Add()
  // jobs, which then run too.
  void Run(const std::function<void(ChildPool&)>& on_tick,
           std::chrono::milliseconds tick = std::chrono::milliseconds(200));
  // Ends a running job with SIGTERM (state kStopped); a queued one never
  // starts.
  void Stop(int index);

  int size() const { return static_cast<int>(jobs_.size()); }
  const ChildJob& job(int index) const { return jobs_[index]; }
  const ChildJobStatus& status(int index) const { return statuses_[index]; }
  // Seconds since a running job started (its total once it ended).
  double Seconds(int index) const;
  int CountIn(ChildState state) const;
  // A stop signal arrived during Run(): the jobs it cut short are
  // kInterrupted.
  bool interrupted() const { return interrupted_; }

 private:
  void StartQueued();
  void Reap();

  int max_concurrent_;
  std::vector<ChildJob> jobs_;
  std::vector<ChildJobStatus> statuses_;
  std::vector<std::unique_ptr<ChildProcess>> processes_;
  std::vector<bool> stop_requested_;
  bool interrupted_ = false;
};

// The running executable (/proc/self/exe), to start main again as a child.
absl::StatusOr<std::string> SelfExecutable();

// --plugin_dir flags that make a child main load exactly the plugins this
// process has registered (the directories of their files).
std::vector<std::string> PluginDirFlags(const PluginRegistry& registry);

}  // namespace ouroboros

#endif  // OUROBOROS_DISTRIBUTED_CHILD_PROCESS_H_
