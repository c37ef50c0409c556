#include "ouroboros/cli/rank_launcher.h"

#include <string.h>

#include <chrono>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "glog/logging.h"
#include "ouroboros/base/status_macros.h"
#include "ouroboros/base/stop_signal.h"
#include "ouroboros/distributed/child_process.h"
#include "ouroboros/distributed/distributed.h"

namespace ouroboros {
namespace {

// How long the other ranks may take to end by themselves after one failed.
constexpr auto kGraceAfterFailure = std::chrono::seconds(30);

bool IsFlag(absl::string_view arg, absl::string_view name) {
  return arg == absl::StrCat("--", name) || arg == absl::StrCat("-", name);
}

bool IsFlagWithValue(absl::string_view arg, absl::string_view name) {
  return absl::StartsWith(arg, absl::StrCat("--", name, "=")) ||
         absl::StartsWith(arg, absl::StrCat("-", name, "="));
}

// The first failed rank, when it failed; Stop()s them all once the grace
// time is over.
class FailureWatch {
 public:
  void operator()(ChildPool& pool) {
    for (int rank = 0; rank < pool.size() && failed_rank_ < 0; ++rank) {
      if (pool.status(rank).state == ChildState::kFailed) {
        failed_rank_ = rank;
        failed_at_ = std::chrono::steady_clock::now();
      }
    }
    if (!stopping_ &&
        std::chrono::steady_clock::now() - failed_at_ > kGraceAfterFailure) {
      stopping_ = true;
      for (int rank = 0; rank < pool.size(); ++rank) pool.Stop(rank);
    }
  }
  int failed_rank() const { return failed_rank_; }

 private:
  int failed_rank_ = -1;
  std::chrono::steady_clock::time_point failed_at_ =
      std::chrono::steady_clock::time_point::max();
  bool stopping_ = false;
};

absl::Status RankFailure(const ChildJobStatus& failed, int rank) {
  const std::string message = absl::StrCat(
      failed.term_signal != 0
          ? absl::StrFormat("rank %d was killed by signal %d (%s)", rank,
                            failed.term_signal, strsignal(failed.term_signal))
          : absl::StrFormat("rank %d exited with code %d", rank,
                            failed.exit_code),
      "; the distributed job failed");
  return failed.exit_code == 2 ? absl::InvalidArgumentError(message)
                               : absl::InternalError(message);
}

}  // namespace

std::vector<std::string> RankCommand(const std::string& self,
                                     const std::vector<std::string>& args,
                                     const std::string& run_dir) {
  std::vector<std::string> command = {self};
  for (size_t i = 0; i < args.size(); ++i) {
    const absl::string_view arg = args[i];
    if (IsFlagWithValue(arg, "nproc") || IsFlagWithValue(arg, "run_dir")) {
      continue;
    }
    if (IsFlag(arg, "nproc") || IsFlag(arg, "run_dir")) {
      ++i;  // and its value, the next word
      continue;
    }
    command.push_back(std::string(arg));
  }
  if (!run_dir.empty()) command.push_back("--run_dir=" + run_dir);
  return command;
}

absl::Status LaunchRanks(const std::vector<std::string>& command, int nproc,
                         const std::string& run_dir) {
  ASSIGN_OR_RETURN(int port, FreeLocalPort());
  LOG(INFO) << absl::StrFormat(
      "starting %d ranks (rendezvous 127.0.0.1:%d); rank 0 writes %s", nproc,
      port, run_dir.empty() ? "into the resumed run" : run_dir);
  ChildPool pool(nproc);
  for (int rank = 0; rank < nproc; ++rank) {
    pool.Add({absl::StrCat("rank ", rank),
              command,
              /*output_path=*/"",
              /*timeout_seconds=*/0,
              {absl::StrCat("RANK=", rank), absl::StrCat("LOCAL_RANK=", rank),
               absl::StrCat("WORLD_SIZE=", nproc),
               absl::StrCat("LOCAL_WORLD_SIZE=", nproc),
               "MASTER_ADDR=127.0.0.1", absl::StrCat("MASTER_PORT=", port)}});
  }
  FailureWatch watch;
  pool.Run([&watch](ChildPool& p) { watch(p); }, std::chrono::milliseconds(50));
  if (pool.interrupted()) {
    return StoppedBySignal(
        absl::StrCat("(every rank); continue with --resume=",
                     run_dir.empty() ? "<the run dir>" : run_dir));
  }
  if (watch.failed_rank() < 0) return absl::OkStatus();
  return RankFailure(pool.status(watch.failed_rank()), watch.failed_rank());
}

}  // namespace ouroboros
