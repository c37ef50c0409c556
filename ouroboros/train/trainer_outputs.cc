// What the Trainer leaves on disk and resumes from (trainer.h): the run
// directory's outputs, checkpoints with every component's own state, the
// stop for a signal, metrics.json.
#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "glog/logging.h"
#include "ouroboros/base/files.h"
#include "ouroboros/base/status_macros.h"
#include "ouroboros/base/stop_signal.h"
#include "ouroboros/config/config.h"
#include "ouroboros/runs/event_writer.h"
#include "ouroboros/runs/run_hparams.h"
#include "ouroboros/runs/run_layout.h"
#include "ouroboros/runs/run_metrics.h"
#include "ouroboros/train/trainer.h"

namespace ouroboros {

absl::Status Trainer::PrepareOutputs() {
  RETURN_IF_ERROR(MakeDirectories(CheckpointDir(context_.run_dir)));
  RETURN_IF_ERROR(
      WriteFileAtomically(CheckpointFile(context_.run_dir, kConfigFile),
                          RunConfigToJson(config())));
  absl::StatusOr<std::unique_ptr<EventWriter>> events =
      EventWriter::Create(RunFile(context_.run_dir, kTensorBoardDir));
  if (!events.ok()) return events.status();
  events_ = *std::move(events);
  // Each event file carries the run's settings for TensorBoard's HParams
  // view (a resumed run's new file too).
  if (absl::Status s =
          events_->AddHparams(RunHparamsOf(config(), WallSeconds()));
      !s.ok()) {
    LOG(WARNING) << "TensorBoard: " << s.message();
  }
  return absl::OkStatus();
}

absl::Status Trainer::ResumeFromCheckpoint() {
  absl::StatusOr<CheckpointState> state =
      LoadCheckpoint(context_.resume_from, model_->module(), *optimizer_);
  if (!state.ok()) return state.status();
  state_ = *std::move(state);
  // The components' own states wait for the hooks (BuildHooks).
  resumed_components_ = std::move(state_.components);
  state_.components.clear();
  last_checkpoint_ = context_.resume_from;
  if (events_ != nullptr) {
    if (absl::Status s = events_->AddSessionStart(state_.position.step,
                                                  context_.resume_from);
        !s.ok()) {
      LOG(WARNING) << "TensorBoard: " << s.message();
    }
  }
  LOG(INFO) << absl::StrFormat(
      "resumed from %s: %d epochs and %d batches done, step %d",
      context_.resume_from, state_.position.epoch,
      state_.position.batch_in_epoch, state_.position.step);
  return absl::OkStatus();
}

std::vector<NamedComponent> Trainer::StatefulComponents() {
  std::vector<NamedComponent> components;
  components.emplace_back("model " + config().model(), model_.get());
  if (data_.train.generator != nullptr) {
    components.emplace_back("data " + config().data_config().dataset(),
                            data_.train.generator.get());
  }
  for (const NamedHook& hook : hooks_) {
    components.emplace_back(hook.name, hook.hook.get());
  }
  return components;
}

absl::Status Trainer::RestoreComponentStates() {
  if (context_.resume_from.empty()) return absl::OkStatus();
  ComponentStates saved = std::move(resumed_components_);
  resumed_components_.clear();
  return ouroboros::RestoreComponentStates(
      StatefulComponents(), std::move(saved), state_.has_component_states,
      context_.resume_from);
}

absl::Status Trainer::WriteCheckpoint(const std::string& path) {
  ASSIGN_OR_RETURN(state_.components,
                   CollectComponentStates(StatefulComponents()));
  // The weights for Python first: a checkpoint that exists has its weights
  // file beside it, also after a kill between the two (a resume from it
  // writes no checkpoint of that step again).
  RETURN_IF_ERROR(SaveWeightsForPython(WeightsPathFor(path), model_->module()));
  return SaveCheckpoint(path, model_->module(), *optimizer_, state_);
}

absl::Status Trainer::SaveStepCheckpoint() {
  if (!writes_outputs()) return absl::OkStatus();
  const std::string path = StepCheckpointPath();
  if (last_checkpoint_ == path) return absl::OkStatus();
  RETURN_IF_ERROR(WriteCheckpoint(path));
  last_checkpoint_ = path;
  PruneCheckpoints(CheckpointDir(context_.run_dir),
                   config().run_config().keep_checkpoints());
  return absl::OkStatus();
}

absl::Status Trainer::SaveNamedCheckpoint(const std::string& file_name) {
  if (!writes_outputs()) return absl::OkStatus();
  return WriteCheckpoint(CheckpointFile(context_.run_dir, file_name));
}

std::string Trainer::StepCheckpointPath() const {
  return CheckpointFile(context_.run_dir,
                        CheckpointFileName(state_.position.step));
}

absl::Status Trainer::StopForSignal(int64_t batches_in_epoch) {
  const TrainingPosition& position = state_.position;
  const std::string where = absl::StrFormat(
      "after step %d (epoch %d, batch %d of %d)", position.step,
      position.epoch + 1, position.batch_in_epoch, batches_in_epoch);
  if (!writes_outputs()) {
    return StoppedBySignal(
        absl::StrCat(where, "; rank 0 saves the checkpoint"));
  }
  RETURN_IF_ERROR(SaveStepCheckpoint());
  if (events_ != nullptr) (void)events_->Flush();
  return StoppedBySignal(
      absl::StrCat(where, "; checkpoint ", last_checkpoint_,
                   "; continue with --resume=", context_.run_dir));
}

absl::Status Trainer::WriteMetricsJson(const TrainResult& result) {
  RunMetrics metrics;
  metrics.epochs = result.position.epoch;
  metrics.steps = result.position.step;
  metrics.last_train_loss = result.last_train_loss;
  metrics.val = result.val;
  metrics.test = result.test;
  metrics.final_checkpoint = result.final_checkpoint;
  const ScoreConfig& score = config().score_config();
  if (score.patience() > 0) {
    metrics.early_stopping = EarlyStoppingRecord{
        result.stopped_early, score.monitor(), score.patience(),
        score.min_delta(), result.best_metric};
  }
  return WriteRunMetrics(context_.run_dir, metrics);
}

}  // namespace ouroboros
