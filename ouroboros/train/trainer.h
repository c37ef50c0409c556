// The Trainer: one training run, the building block of every pipeline.
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
// A family changes what it needs through its model's training module
// (interfaces.h: Model::TrainStep, Evaluate, OnEpochEnd, OnRunEnd, with this
// Trainer as their TrainingContext) and its data through a data source
// plugin, so every family runs under the plain `train` pipeline.
#ifndef OUROBOROS_TRAIN_TRAINER_H_
#define OUROBOROS_TRAIN_TRAINER_H_

#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "ouroboros/api/data.h"
#include "ouroboros/api/interfaces.h"
#include "ouroboros/api/metrics.h"
#include "ouroboros/api/trainer_hook.h"
#include "ouroboros/hooks/builtin_hooks.h"
#include "ouroboros/runs/checkpoint.h"
#include "ouroboros/runs/run_layout.h"
#include "ouroboros/runs/run_summary.h"

namespace ouroboros {

class EventWriter;
class GradientReducer;
class ProcessGroup;

// Final: a family changes the training through its model's training module,
// its data source and hooks (trainer_hook.h), not by deriving from the
// Trainer. The Trainer is the RunActions its hooks act through.
class Trainer final : public TrainingContext, public RunActions {
 public:
  explicit Trainer(PipelineContext context);
  ~Trainer() override;

  absl::StatusOr<TrainResult> Run();

  // TrainingContext, for the model's training module.
  const RunConfig& config() const override { return *context_.config; }
  torch::optim::Optimizer& optimizer() override { return *optimizer_; }
  int64_t step() const override;
  int64_t epoch() const override;
  int rank() const override;
  int world_size() const override;
  const std::string& run_dir() const override;
  const DataSplits& data() const override { return data_; }
  bool writes_outputs() const override;
  absl::StatusOr<double> StandardTrainStep(const Batch& batch) override;
  absl::Status SynchronizeGradients() override;
  absl::StatusOr<std::map<std::string, double>> StandardEvaluate(
      const Dataset& data) override;
  void LogScalar(const std::string& tag, double value) override;

  // RunActions, for the hooks.
  absl::Status SaveStepCheckpoint() override;
  absl::Status SaveNamedCheckpoint(const std::string& file_name) override;
  absl::StatusOr<std::map<std::string, double>> EvaluateSplit(
      Split split) override;
  void LogHistogram(const std::string& tag, const at::Tensor& values) override;
  void EndRunEarly(const std::string& reason) override;

 private:
  // The data source data_config.dataset names.
  absl::StatusOr<DataSplits> LoadData();
  absl::StatusOr<std::unique_ptr<Model>> BuildModel(const DataSpec& spec);
  absl::StatusOr<std::unique_ptr<torch::optim::Optimizer>> BuildOptimizer(
      Model& model);
  // The model's Evaluate of `split` (by default StandardEvaluate).
  absl::StatusOr<std::map<std::string, double>> Evaluate(Split split,
                                                         const Dataset& data);

  // Setup(): the config's defaults, then these stages in order.
  absl::Status Setup();
  // DistributedFromEnvironment(): this rank's process group, if any.
  absl::Status ConnectRanks();
  // The data source's splits (an empty training split is an error).
  absl::Status SetUpData();
  absl::Status SetUpModelAndOptimizer();
  // Rank 0's initial weights and buffers to every rank, and the gradient
  // reducer that averages during the backward.
  absl::Status ShareInitialWeights();
  // Model, optimizer and position from context_.resume_from; the
  // components' own states wait for the hooks (BuildHooks).
  absl::Status ResumeFromCheckpoint();
  // After every step: whether this rank, or in a distributed run any rank,
  // received a stop signal (stop_signal.h); every rank gets the same answer.
  absl::StatusOr<bool> AgreeToStop();
  // Saves a checkpoint at the step just finished (rank 0) and returns the
  // kCancelled status that ends the run.
  absl::Status StopForSignal(int64_t batches_in_epoch);
  // The checkpoint directory, config copy and TensorBoard writer.
  absl::Status PrepareOutputs();
  // Every component that may keep state of its own (component_state.h),
  // by owner name: the model, the training split's generator, the hooks.
  std::vector<NamedComponent> StatefulComponents();
  // On resume, once the hooks exist: each component's LoadState from the
  // checkpoint (component_state.h).
  absl::Status RestoreComponentStates();
  // checkpoints/step-<the current step>.ckpt.
  std::string StepCheckpointPath() const;
  // `path` and its weights file for Python (rank 0).
  absl::Status WriteCheckpoint(const std::string& path);
  absl::Status WriteMetricsJson(const TrainResult& result);

  // Run(), stage by stage.
  struct EpochLoss {
    double sum = 0;
    int64_t count = 0;
    double last_lr = 0;  // the learning rate of the epoch's last step
    // run_config.max_steps stopped the loop; cut_short: inside the epoch
    // (the epoch is not complete and gets no end-of-epoch work).
    bool reached_max_steps = false;
    bool cut_short = false;
  };
  absl::StatusOr<int64_t> StepsPerEpoch() const;
  // One pass over the training batches from where the position stands.
  absl::StatusOr<EpochLoss> TrainEpoch(int64_t epoch, int64_t steps_per_epoch,
                                       TrainResult* result);
  // This rank's order of the training split in `epoch`: the epoch's
  // shuffle, and in a distributed run its slice of every global batch.
  at::Tensor RankEpochOrder(int64_t epoch, int64_t steps_per_epoch) const;
  // One optimizer step on `batch` (or on what the training split's
  // generator draws in its place) at learning rate `lr`, after rank 0's
  // buffers reach this rank: the step's loss; an error when it is not
  // finite, naming the last good checkpoint.
  absl::StatusOr<double> OptimizerStep(Batch batch, double lr, int64_t epoch,
                                       const std::vector<at::Tensor>& buffers);
  // After each optimizer step: the loss to TensorBoard and steps.jsonl,
  // then every hook's OnStepEnd.
  absl::Status EndStep(double loss, double lr);
  // After a complete epoch: the model's and the hooks' epoch end, the
  // evaluation, its record and the score record, then every hook's
  // OnEvaluation.
  absl::Status EndEpoch(int64_t epoch, const EpochLoss& loss,
                        TrainResult* result);
  // The epoch's evaluation into the score record (score_record.h, kept in
  // state_ and the checkpoints): whether it is the new best.
  bool CountInScoreRecord(const std::map<std::string, double>& metrics);
  // Early-stopping message, the hooks' end, the last checkpoint, the test
  // set, the model's OnRunEnd, the plots and, last, metrics.json.
  absl::StatusOr<TrainResult> FinishRun(TrainResult result);

  PipelineContext context_;
  // The run's config with its defaults filled in; context_.config points
  // here once Run() has started.
  RunConfig config_;
  DataSplits data_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  std::unique_ptr<EventWriter> events_;
  std::unique_ptr<ProcessGroup> group_;  // null unless distributed
  // The standard step's gradient averaging during the backward (null: not
  // distributed, or OUROBOROS_DIST_OVERLAP=0). Declared after group_, so
  // destroyed before it.
  std::unique_ptr<GradientReducer> reducer_;
  // Every hook in the order they run (trainer_hook.h), each named as its
  // state is in the checkpoint: "hooks[0] <name>", "builtin <name>",
  // "every-run hook <name>".
  std::vector<NamedHook> hooks_;

  TrainingView View();
  // The config's hooks, the built-in ones and the every-run ones; their
  // states on resume; their OnTrainBegin.
  absl::Status BuildHooks();
  // Each hook's `event`, in order; the first error ends the run.
  absl::Status ForEachHook(
      absl::FunctionRef<absl::Status(TrainerHook&, const TrainingView&)> event);
  CheckpointState state_;
  // What the checkpoint resumed from holds for each component, until
  // RestoreComponentStates hands it over.
  ComponentStates resumed_components_;
  // This step's stop votes, when SynchronizeGradients carried them.
  int stop_votes_ = 0;
  bool stop_votes_exchanged_ = false;
  std::string last_checkpoint_;
  // EndRunEarly's first reason; empty: no hook asked to stop.
  std::string stop_reason_;
};

// A Pipeline that runs one Trainer and logs its summary: the `train`
// pipeline, and a composite pipeline's own training runs:
//   return std::make_unique<TrainerPipeline>(
//       std::make_unique<Trainer>(context));
class TrainerPipeline : public Pipeline {
 public:
  explicit TrainerPipeline(std::unique_ptr<Trainer> trainer);
  absl::Status Run() override;

 private:
  std::unique_ptr<Trainer> trainer_;
};

}  // namespace ouroboros

#endif  // OUROBOROS_TRAIN_TRAINER_H_
