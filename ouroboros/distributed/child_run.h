// Runs of main started as child processes: the tune's trials and final run,
// the parallel pipeline's members and the introspective demo's runs are
// all started this way.
//
//   const ChildRunBudget budget = PlanChildRuns(
//       config.max_concurrent(), config.trial_threads(), context.num_threads);
//   ChildPool pool(budget.concurrent);
//   ChildRun run{"trial-003", trials_dir + "/trial-003"};
//   run.config_path = run.run_dir + ".json";
//   run.threads = budget.threads;
//   ASSIGN_OR_RETURN(ChildJob job, MakeChildRunJob(run, *context.registry));
//   pool.Add(std::move(job));
#ifndef OUROBOROS_DISTRIBUTED_CHILD_RUN_H_
#define OUROBOROS_DISTRIBUTED_CHILD_RUN_H_

#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "ouroboros/distributed/child_process.h"

namespace ouroboros {

class PluginRegistry;

// How many child runs go at once and with how many intra-op threads each.
struct ChildRunBudget {
  int concurrent = 1;
  int threads = 1;
};

// `concurrent` runs at once (0: one per core), `threads` each (0: the cores
// shared out among the concurrent runs, at least 1, and no more than
// `parent_threads`), so that the runs together ask for no more threads than
// the machine has unless told to. `parent_threads` is this process's own
// count (PipelineContext::num_threads: --threads, or what the start-up probe
// of threads.h found worth having): a child runs no wider than that, so a
// probe that found a second thread no faster keeps every child at one.
ChildRunBudget PlanChildRuns(int concurrent, int threads, int parent_threads);

struct ChildRun {
  ChildRun(std::string name, std::string run_dir)
      : name(std::move(name)), run_dir(std::move(run_dir)) {}

  std::string name;     // the job's name in its pool
  std::string run_dir;  // its output goes to run_dir + ".out"
  // --config=config_path --run_dir=run_dir; left empty, the run is resumed
  // from `resume` alone (a run directory holding a checkpoint).
  std::string config_path;
  // --resume=<this>: "auto", or a run directory or checkpoint; empty: none.
  std::string resume;
  int threads = 1;
  double timeout_seconds = 0;  // 0: none
};

// The job that runs `run`: this executable with the run's flags and the
// --plugin_dir flags that load exactly the plugins `registry` holds. The
// child is a plain run even when this process is a rank of a distributed
// job (torchrun's variables are unset for it).
absl::StatusOr<ChildJob> MakeChildRunJob(const ChildRun& run,
                                         const PluginRegistry& registry);

}  // namespace ouroboros

#endif  // OUROBOROS_DISTRIBUTED_CHILD_RUN_H_
