#include "ouroboros/hooks/builtin_hooks.h"

namespace ouroboros {

std::vector<NamedHook> BuiltinHooks(const RunConfig& config) {
  const TrainConfig& run = config.run_config();
  const ScoreConfig& score = config.score_config();
  std::vector<NamedHook> hooks;
  if (run.eval_every_steps() > 0) {
    hooks.push_back(
        {"step_evaluation", MakeStepEvaluation(run.eval_every_steps())});
  }
  if (run.checkpoint_every_steps() > 0) {
    hooks.push_back({"step_checkpoints",
                     MakeStepCheckpoints(run.checkpoint_every_steps())});
  }
  if (!score.monitor().empty()) {
    hooks.push_back({"best_checkpoint", MakeBestCheckpoint(score)});
  }
  if (!score.monitor().empty() && score.patience() > 0) {
    hooks.push_back({"early_stopping", MakeEarlyStopping(score)});
  }
  if (run.histogram_every_epochs() > 0) {
    hooks.push_back({"weight_histograms",
                     MakeWeightHistograms(run.histogram_every_epochs())});
  }
  if (run.checkpoint_every_epochs() > 0) {
    hooks.push_back({"epoch_checkpoints",
                     MakeEpochCheckpoints(run.checkpoint_every_epochs())});
  }
  return hooks;
}

}  // namespace ouroboros
