// The Trainer: one training run, the base every pipeline builds on.
//
//   Trainer trainer(pipeline_context);
//   absl::StatusOr<TrainResult> result = trainer.Run();
//
// Run() seeds everything from the config, loads and splits the data, builds
// the model and optimizer by name, resumes from context.resume_from if set,
// then trains: learning-rate schedule and gradient clipping per step, a
// progress bar, the loss in log.txt and TensorBoard, checkpoints at the
// configured intervals (and always at the end), evaluation with the
// score_config metrics after every epoch, the best checkpoint, and a final
// test evaluation written to metrics.json. A NaN or infinite loss stops the
// run with an error; the last good checkpoint stays.
//
// Distributed (WORLD_SIZE > 1 in the environment, as torchrun or main
// --nproc sets it): every rank trains on its own slice of each global batch
// of batch_size x world_size samples (a last global batch that cannot be
// split evenly is dropped), gradients are averaged over the ranks before
// each optimizer step, buffers (BatchNorm statistics) are rank 0's before
// each step, every rank evaluates, and rank 0 alone writes.
//
// SIGTERM or SIGINT (stop_signal.h): the step in progress finishes, the
// ranks agree on that step, rank 0 saves a checkpoint there, and Run()
// returns kCancelled saying where it stopped; --resume goes on from there
// and ends bit-identical to a run never stopped.
//
// Subclasses change single steps (LoadData, BuildModel, TrainStep, Evaluate,
// OnEpochEnd) without copying the loop; a model plugin that needs its own
// loss or per-epoch work overrides Model::Loss / Model::OnEpochEnd instead.
#ifndef OUROBOROS_TRAINER_H_
#define OUROBOROS_TRAINER_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "ouroboros/checkpoint.h"
#include "ouroboros/data.h"
#include "ouroboros/interfaces.h"
#include "ouroboros/metrics.h"
#include "ouroboros/run_layout.h"

namespace ouroboros {

class EventWriter;
class ProcessGroup;

// In the run directory's kEpochRecordFile (run_layout.h): one JSON object
// per finished epoch, e.g.
// {"epoch":3,"step":1266,"train_loss":0.41,"val":{"accuracy":0.86},"model":{}}
// ("val", or "test" when there is no validation set).

struct EpochRecord {
  int64_t epoch = 0;  // 1-based: epochs finished
  int64_t step = 0;
  double train_loss = 0;
  std::string evaluated_on;               // "val" or "test"
  std::map<std::string, double> metrics;  // score_config metrics there
  std::map<std::string, double> model;    // the model's own (Model::OnEpochEnd)
};

// The records of `run_dir` so far (none if the file is not there yet); a
// last line still being written is left out.
std::vector<EpochRecord> ReadEpochRecords(const std::string& run_dir);

// In the run directory's kStepEvalFile, with run_config.eval_every_steps =
// N > 0: one JSON object per N optimizer steps, e.g.
// {"step":200,"epoch":2,"val":{"accuracy":0.81},"test":{"accuracy":0.80}}
// (each of "val" and "test" only when that split is not empty). A resumed
// run repeats the steps after its checkpoint; the last record of a step wins.

struct StepEvalRecord {
  int64_t step = 0;
  int64_t epoch = 0;  // the step's epoch, 1-based (as on the console)
  std::map<std::string, double> val;
  std::map<std::string, double> test;
};

// The records of `run_dir` so far, one per step (the last record of a step
// in the file), sorted by step (a last line still being written is left
// out).
std::vector<StepEvalRecord> ReadStepEvalRecords(const std::string& run_dir);

struct TrainResult {
  TrainingPosition position;
  double last_train_loss = 0;
  std::map<std::string, double> val;   // score_config metrics; empty if no val
  std::map<std::string, double> test;  // on the test set, at the end
  std::string final_checkpoint;
  // score_config.patience ran out before run_config.epochs.
  bool stopped_early = false;
  double best_metric = 0;  // of score_config.monitor
};

class Trainer {
 public:
  explicit Trainer(PipelineContext context);
  virtual ~Trainer();

  absl::StatusOr<TrainResult> Run();

 protected:
  virtual absl::StatusOr<DataSplits> LoadData();
  virtual absl::StatusOr<std::unique_ptr<Model>> BuildModel(
      const DataSpec& spec);
  virtual absl::StatusOr<std::unique_ptr<torch::optim::Optimizer>>
  BuildOptimizer(Model& model);
  // Forward, loss, backward, clipping and the optimizer step; returns the
  // loss before the step.
  virtual absl::StatusOr<double> TrainStep(const Batch& batch);
  // The score_config metrics of the model on `data`.
  virtual absl::StatusOr<std::map<std::string, double>> Evaluate(
      const Dataset& data);
  // After each epoch: by default, the model's own OnEpochEnd.
  virtual absl::Status OnEpochEnd(int64_t epoch,
                                  std::map<std::string, double>* metrics);

  const RunConfig& config() const { return *context_.config; }
  const PipelineContext& context() const { return context_; }
  Model& model() { return *model_; }
  torch::optim::Optimizer& optimizer() { return *optimizer_; }

  // Where training stands (restored from the checkpoint on resume):
  // inside TrainStep, `step` is the number of optimizer steps before it.
  const TrainingPosition& position() const { return state_.position; }
  // This process's rank in a distributed run; 0 otherwise.
  int rank() const;

  // A scalar to TensorBoard under `tag` at the current step.
  void LogScalar(const std::string& tag, double value);

  // In a distributed run (ouroboros/distributed.h), replaces every gradient
  // by its mean over the ranks; a no-op otherwise. A TrainStep override
  // calls it between backward() and the optimizer step.
  absl::Status SynchronizeGradients();
  // Rank 0 (or the only process) writes logs, TensorBoard, checkpoints.
  bool writes_outputs() const;

 private:
  absl::Status Setup();
  // After every step: whether this rank, or in a distributed run any rank,
  // received a stop signal (stop_signal.h); every rank gets the same answer.
  absl::StatusOr<bool> AgreeToStop();
  // Saves a checkpoint at the step just finished (rank 0) and returns the
  // kCancelled status that ends the run.
  absl::Status StopForSignal(int64_t batches_in_epoch);
  // The checkpoint directory, config copy and TensorBoard writer.
  absl::Status PrepareOutputs();
  absl::Status SaveStepCheckpoint();
  // SaveStepCheckpoint() unless the newest checkpoint is of this very step.
  absl::Status SaveStepCheckpointUnlessSaved();
  // run_config.eval_every_steps: val and test metrics to evals.jsonl.
  absl::Status EvaluateAtStep();
  absl::Status WriteMetricsJson(const TrainResult& result);
  void LogHistograms();

  PipelineContext context_;
  DataSplits data_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  std::unique_ptr<EventWriter> events_;
  std::unique_ptr<ProcessGroup> group_;              // null unless distributed
  std::vector<std::unique_ptr<TrainerHook>> hooks_;  // config().hooks()
  // HookEntry::in_every_run: after hooks_, and after each step's checkpoint.
  std::vector<std::unique_ptr<TrainerHook>> every_run_hooks_;

  TrainingView View();
  absl::Status BuildHooks();
  CheckpointState state_;
  // This step's stop votes, when SynchronizeGradients carried them.
  int stop_votes_ = 0;
  bool stop_votes_exchanged_ = false;
  std::string checkpoint_dir_;
  std::string last_checkpoint_;
};

// A Pipeline that runs one Trainer (or a subclass of it) and logs the
// summary line: the `train` pipeline, and any family's own training
// pipeline, e.g. in a plugin's pipeline factory:
//   return std::make_unique<TrainerPipeline>(
//       std::make_unique<QuineTrainer>(context));
class TrainerPipeline : public Pipeline {
 public:
  explicit TrainerPipeline(std::unique_ptr<Trainer> trainer);
  absl::Status Run() override;

 private:
  std::unique_ptr<Trainer> trainer_;
};

}  // namespace ouroboros

#endif  // OUROBOROS_TRAINER_H_
