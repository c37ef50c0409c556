// The Trainer's own behaviours, each an ordinary TrainerHook (trainer_hook.h)
// in its own file, acting on the run only through RunActions. A plugin
// could have written any of them.
#ifndef OUROBOROS_HOOKS_BUILTIN_HOOKS_H_
#define OUROBOROS_HOOKS_BUILTIN_HOOKS_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ouroboros/api/trainer_hook.h"
#include "ouroboros/config/config.pb.h"

namespace ouroboros {

struct NamedHook {
  std::string name;
  std::unique_ptr<TrainerHook> hook;
};

// The built-in hooks `config` enables, in the order they run: step
// evaluation, step checkpoints, the best checkpoint, early stopping, weight
// histograms, epoch checkpoints.
std::vector<NamedHook> BuiltinHooks(const RunConfig& config);

// run_config.eval_every_steps: every `every_steps` steps, the val and test
// metrics to TensorBoard (step_eval/<split>/<metric>) and to evals.jsonl
// with the training seconds spent so far (the evaluations' time left out).
std::unique_ptr<TrainerHook> MakeStepEvaluation(int64_t every_steps);

// run_config.checkpoint_every_steps.
std::unique_ptr<TrainerHook> MakeStepCheckpoints(int64_t every_steps);

// score_config.monitor: checkpoints/best.ckpt (and best.weights.pt) after
// every evaluation that is the new best.
std::unique_ptr<TrainerHook> MakeBestCheckpoint(const ScoreConfig& score);

// score_config.patience: stops the run once the monitored metric has not
// improved by more than min_delta for `patience` evaluations (also when a
// run resumes past that point).
std::unique_ptr<TrainerHook> MakeEarlyStopping(const ScoreConfig& score);

// run_config.histogram_every_epochs: every parameter to TensorBoard as a
// histogram (weights/<name>).
std::unique_ptr<TrainerHook> MakeWeightHistograms(int64_t every_epochs);

// run_config.checkpoint_every_epochs: a step checkpoint at the end of every
// `every_epochs`-th epoch (unless one was saved at that step already).
std::unique_ptr<TrainerHook> MakeEpochCheckpoints(int64_t every_epochs);

}  // namespace ouroboros

#endif  // OUROBOROS_HOOKS_BUILTIN_HOOKS_H_
