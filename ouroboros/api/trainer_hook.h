// The Trainer's one callback interface: TrainerHook.
//
// Everything that happens at the training loop's boundaries beside the step
// itself is a hook: the plugins' hooks a config names in `hooks`, the
// Trainer's own behaviours (builtin_hooks.h: evaluation every N steps, step
// checkpoints, the best checkpoint, early stopping, weight histograms, epoch
// checkpoints) and the hooks a loaded plugin runs in every run. They run in
// one defined order at every boundary:
//
//   1. the config's hooks, in the order of `hooks`;
//   2. the built-in hooks the config enables, in the order above;
//   3. the every-run hooks (HookEntry::in_every_run), by name.
//
// So a config's hook sees a step before its evaluation and checkpoint, and
// an every-run hook (fault injection) after them.
//
// A hook sees the live model and optimizer, where training stands, the
// monitored metric's record (ScoreRecord), every epoch's evaluation
// (OnEvaluation), and acts on the run through RunActions: checkpoints,
// evaluations, TensorBoard, a request to stop. Its own state (counters,
// snapshots) goes into the checkpoint through Stateful's SaveState /
// LoadState (component_state.h).
#ifndef OUROBOROS_API_TRAINER_HOOK_H_
#define OUROBOROS_API_TRAINER_HOOK_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "ouroboros/api/component_state.h"
#include "ouroboros/api/dataset.h"
#include "ouroboros/api/score_record.h"
#include "ouroboros/base/torch_fwd.h"
#include "ouroboros/config/config.pb.h"

namespace ouroboros {

// What a hook may ask of the run it is in. Every rank of a distributed run
// has one; the ones that write files write on rank 0 only and return OK on
// the others, so a hook calls them alike on every rank.
class RunActions {
 public:
  virtual ~RunActions() = default;
  // checkpoints/step-<step>.ckpt and its weights file for Python, with the
  // model, optimizer, position, score record and every component's state
  // (the hooks' too); the oldest step checkpoints beyond
  // run_config.keep_checkpoints are deleted. Nothing when the newest
  // checkpoint is of this very step already.
  virtual absl::Status SaveStepCheckpoint() = 0;
  // The same content as checkpoints/<file_name> (e.g. "best.ckpt"), kept
  // apart from the step checkpoints: never pruned, never resumed from by
  // --resume=auto.
  virtual absl::Status SaveNamedCheckpoint(const std::string& file_name) = 0;
  // The score_config metrics of `split` as the model evaluates it now; an
  // empty map when the split is empty (nothing is evaluated).
  virtual absl::StatusOr<std::map<std::string, double>> EvaluateSplit(
      Split split) = 0;
  // A scalar, or a histogram of `values`, to TensorBoard at the current
  // step (rank 0; nothing without a writer).
  virtual void LogScalar(const std::string& tag, double value) = 0;
  virtual void LogHistogram(const std::string& tag,
                            const at::Tensor& values) = 0;
  // Ends the run after this boundary: the step in progress (or the epoch,
  // when asked at its end) finishes, then the run ends as at its last epoch
  // (final checkpoint, test set, metrics.json). `reason` goes to log.txt.
  // In a distributed run every rank must ask alike (hooks that decide on
  // the evaluation do: every rank evaluates alike).
  virtual void EndRunEarly(const std::string& reason) = 0;
};

// What a hook sees at a boundary: the live model and optimizer (a hook may
// write into both, e.g. replace every weight and reset the optimizer's
// state for them) and where training stands.
struct TrainingView {
  torch::nn::Module* module = nullptr;
  torch::optim::Optimizer* optimizer = nullptr;
  int64_t step = 0;   // optimizer steps done
  int64_t epoch = 0;  // epochs done
  std::string run_dir;
  // False on every rank but 0 of a distributed run: a hook writes its files
  // into run_dir only when this is true (every rank may read them).
  bool writes_outputs = true;
  // The run's actions; null only outside a Trainer run (a hook's own tests).
  RunActions* actions = nullptr;
  ScoreRecord score = {};
};

// One epoch's evaluation, as the Trainer logs it and epochs.jsonl records
// it: on the validation split, or on the test split when there is no
// validation split.
struct EpochEvaluation {
  Split split = Split::kValidation;
  std::map<std::string, double> metrics;
  // This evaluation's value of score_config.monitor beat the best before it
  // (view.score already counts it); false without a monitor.
  bool new_best = false;
};

// Runs inside any Trainer run that names it in the config's `hooks`. A hook
// that keeps state saves it in the checkpoint through Stateful's SaveState /
// LoadState (component_state.h): SaveState runs when a checkpoint is
// written, after this step's OnStepEnd; on resume LoadState runs before
// OnTrainBegin, which then sees the step of the checkpoint; the steps after
// it run again. So a hook whose whole state goes through SaveState resumes
// bit-identical to an uninterrupted run.
class TrainerHook : public Stateful {
 public:
  virtual ~TrainerHook() = default;
  // Once the model, optimizer and (on resume) checkpoint are loaded.
  virtual absl::Status OnTrainBegin(const TrainingView& /*view*/) {
    return absl::OkStatus();
  }
  // After every optimizer step (view.step already counts it).
  virtual absl::Status OnStepEnd(const TrainingView& /*view*/) {
    return absl::OkStatus();
  }
  // After every epoch, before its evaluation; scalars put in `metrics` are
  // logged and recorded like the model's own.
  virtual absl::Status OnEpochEnd(const TrainingView& /*view*/,
                                  std::map<std::string, double>* /*metrics*/) {
    return absl::OkStatus();
  }
  // After every epoch's evaluation (view.epoch already counts the epoch).
  virtual absl::Status OnEvaluation(const TrainingView& /*view*/,
                                    const EpochEvaluation& /*evaluation*/) {
    return absl::OkStatus();
  }
  // After the last step, before the final checkpoint and test evaluation.
  virtual absl::Status OnTrainEnd(const TrainingView& /*view*/) {
    return absl::OkStatus();
  }
};

struct HookContext {
  const RunConfig* config = nullptr;
  std::string config_source;
  // This hook's entry: config->hooks(index); -1 for a hook that runs in
  // every run (HookEntry::in_every_run).
  int index = 0;
  std::string run_dir;
};

}  // namespace ouroboros

#endif  // OUROBOROS_API_TRAINER_HOOK_H_
