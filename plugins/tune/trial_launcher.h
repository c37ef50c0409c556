// How the tune starts its runs: each trial's config (the base config with
// the trial's values), the child run that runs it, and the final run with
// the best values, in this process or, for a distributed tune, as a child.
#ifndef PLUGINS_TUNE_TRIAL_LAUNCHER_H_
#define PLUGINS_TUNE_TRIAL_LAUNCHER_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "ouroboros/api/interfaces.h"
#include "ouroboros/config/config.h"
#include "ouroboros/distributed/child_run.h"
#include "plugins/tune/search.h"
#include "plugins/tune/trial_store.h"
#include "plugins/tune/tune.pb.h"

namespace ouroboros::tune {

// The base config with the trial's values, run by trial_pipeline for
// trial_epochs and measuring the tuned metric; an error names the config
// file and the trial.
absl::StatusOr<RunConfig> TrialConfig(const PipelineContext& context,
                                      const TunePipelineConfig& tune,
                                      const Trial& trial);

// How every trial of a tune is started.
struct TrialLaunch {
  int threads = 1;
  std::string trials_dir;
  double timeout_seconds = 0;  // 0: none
  bool resuming = false;       // the tune was resumed
};

// The child run of `record` in <trials_dir>/<name>. A trial a resumed tune
// had cut short goes on from its newest checkpoint; otherwise its directory
// starts empty and its config is written beside it (<name>.json).
absl::StatusOr<ChildRun> PrepareTrialRun(const TrialRecord& record,
                                         const TrialLaunch& launch);

// The final run with `best_config` in <run_dir>/final: nothing when it has
// finished, continued from its checkpoint when it has one, else from the
// start. `as_child`: as a plain single-process child run (rank 0 of a
// distributed tune, whose own process is a rank of the job).
absl::Status RunFinal(const PipelineContext& context,
                      const RunConfig& best_config, bool as_child);

}  // namespace ouroboros::tune

#endif  // PLUGINS_TUNE_TRIAL_LAUNCHER_H_
