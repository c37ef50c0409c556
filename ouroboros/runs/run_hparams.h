// A run's settings as TensorBoard's HParams view lists them.
//
//   RunHparams hparams = RunHparamsOf(config, start_time);
//   events->AddHparams(hparams);  // event_writer.h
#ifndef OUROBOROS_RUNS_RUN_HPARAMS_H_
#define OUROBOROS_RUNS_RUN_HPARAMS_H_

#include "ouroboros/config/config.pb.h"
#include "ouroboros/runs/event_writer.h"

namespace ouroboros {

// Every field of the resolved config (what config.json holds) by its path,
// as tools/compare_runs names them: "optim_config.lr", "hooks[0].name". A
// list of scalars is one setting, written as JSON ("[256, 128]"). The metric
// tags are the train loss and each score_config metric on validation and
// test. The group name is the same for configs that differ only in seed
// (and run_name, a label).
RunHparams RunHparamsOf(const RunConfig& config, double start_time_secs);

}  // namespace ouroboros

#endif  // OUROBOROS_RUNS_RUN_HPARAMS_H_
