#include "ouroboros/distributed/child_run.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "ouroboros/base/threads.h"

namespace ouroboros {

ChildRunBudget PlanChildRuns(int concurrent, int threads, int parent_threads) {
  ChildRunBudget budget;
  budget.concurrent = concurrent > 0 ? concurrent : CoresPerProcess(1);
  // CoresPerProcess is at least 1, so a child never gets 0 threads.
  budget.threads = threads > 0 ? threads
                               : std::min(CoresPerProcess(budget.concurrent),
                                          std::max(1, parent_threads));
  return budget;
}

absl::StatusOr<ChildJob> MakeChildRunJob(const ChildRun& run,
                                         const PluginRegistry& registry) {
  absl::StatusOr<std::string> self = SelfExecutable();
  if (!self.ok()) return self.status();
  std::vector<std::string> argv = {*self,
                                   absl::StrCat("--threads=", run.threads)};
  if (!run.config_path.empty()) {
    argv.push_back("--config=" + run.config_path);
    argv.push_back("--run_dir=" + run.run_dir);
  }
  if (!run.resume.empty()) argv.push_back("--resume=" + run.resume);
  for (std::string& flag : PluginDirFlags(registry)) {
    argv.push_back(std::move(flag));
  }
  return ChildJob{run.name, std::move(argv), run.run_dir + ".out",
                  run.timeout_seconds, WithoutDistributedEnvironment()};
}

}  // namespace ouroboros
