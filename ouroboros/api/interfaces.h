// The kinds of things a plugin provides: models (with their training
// module), data sources, optimizers, pipelines and Trainer hooks, and what
// the core hands each factory.
//
// A model plugin implements Model and registers a ModelFactory; see
// plugins/mlp for a complete example. Only light headers here: LibTorch
// types are forward-declared so including this costs little.
#ifndef OUROBOROS_API_INTERFACES_H_
#define OUROBOROS_API_INTERFACES_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "ouroboros/api/component_state.h"
#include "ouroboros/api/dataset.h"
#include "ouroboros/api/trainer_hook.h"
#include "ouroboros/base/torch_fwd.h"
#include "ouroboros/config/config.pb.h"

namespace ouroboros {

class PluginRegistry;

class TrainingContext;

// A figure of a family's own, drawn into <run_dir>/plots/<name>.png when the
// run ends (ouroboros/runs/plots_2_run.py), one panel per series, stacked,
// sharing the x axis. A series names a curve of the run's records:
// "model/<metric>" (a metric the model's OnEpochEnd put in `metrics`, per
// epoch), "val/<metric>" or "test/<metric>" (the metrics of each epoch's
// evaluation), "evals/val/<metric>" (every run_config.eval_every_steps),
// "train/loss", "train/lr".
struct FigureSpec {
  std::string name;  // the file name without ".png"
  std::string title;
  std::vector<std::string> series;
  // A vertical line at every epoch where this series has a value, e.g. a
  // quine's "model/regenerated_weight_sq", recorded only when it
  // regenerates; empty: none.
  std::string mark_where_present;
  std::string mark_label;
  bool log_scale = false;
  // One heatmap instead of stacked panels: a row per epoch, a column per
  // series, each cell its value at that epoch (blank where it has none),
  // e.g. a continual run's accuracy on each task after each task.
  bool heatmap = false;
  // A series' chance level, drawn as a labelled dashed line across its
  // panel, e.g. {"val/accuracy", 0.2} for 5-way episodes.
  std::map<std::string, double> chance;
};

// A trainable network. Forward maps a batch of inputs (batch x input_shape)
// to outputs, by default logits (batch x num_classes). State that is not a
// parameter or buffer of module() (a cursor, a shuffled order) goes into
// the checkpoint through Stateful's SaveState / LoadState
// (component_state.h), or a resumed run does not continue exactly.
class Model : public Stateful {
 public:
  virtual ~Model() = default;
  // The torch module that owns every parameter and buffer (for optimizers,
  // checkpoints and saving).
  virtual torch::nn::Module& module() = 0;
  virtual at::Tensor Forward(const at::Tensor& inputs) = 0;
  // The training loss of a batch from Forward's outputs. Default: mean
  // cross-entropy (log-softmax + NLL) of logits against class indices.
  virtual at::Tensor Loss(const at::Tensor& outputs, const at::Tensor& targets);

  // The training module: what a family does differently from a classifier,
  // each with the plain behaviour as default. The Trainer calls these in
  // every pipeline (train, tune, parallel, --nproc, torchrun), so a family
  // needs no Trainer subclass and no pipeline of its own.
  //
  // One optimizer step on `batch`; returns the loss before the step.
  // Default: training.StandardTrainStep(batch) (Forward, Loss, backward,
  // gradient averaging across ranks, clipping, the optimizer's step).
  virtual absl::StatusOr<double> TrainStep(const Batch& batch,
                                           TrainingContext& training);
  // The metrics of `split` (validation after each epoch, test at the end).
  // Default: training.StandardEvaluate(data), the score_config metrics of
  // Forward's logits.
  virtual absl::StatusOr<std::map<std::string, double>> Evaluate(
      Split split, const Dataset& data, TrainingContext& training);
  // After every training epoch (0-based `epoch`), e.g. a quine's
  // regeneration (which may reset training.optimizer()'s state). Scalars put
  // in `metrics` are logged (console, log.txt, TensorBoard as
  // "model/<name>").
  virtual absl::Status OnEpochEnd(int64_t /*epoch*/,
                                  TrainingContext& /*training*/,
                                  std::map<std::string, double>* /*metrics*/) {
    return absl::OkStatus();
  }
  // Once the run is over: after the final checkpoint and test evaluation,
  // before metrics.json (which marks the run finished for --resume, so a
  // run killed in here runs it again when resumed); rank 0 writes, every
  // rank calls it. E.g. a meta-test of the best checkpoint written to a
  // file of the family's own.
  virtual absl::Status OnRunEnd(TrainingContext& /*training*/) {
    return absl::OkStatus();
  }
  // The family's own figures, besides the loss, the monitored metric and the
  // learning rate that every run draws. Default: none.
  virtual std::vector<FigureSpec> Figures() const { return {}; }
  // The family's headline results, which the run's summary prints after
  // its validation and test lines, one "result" line each (e.g. the SRWM's
  // meta-test accuracy, a quine's error before and after regeneration).
  // Asked once, after OnRunEnd, on the rank that writes. Default: none.
  virtual std::vector<std::string> SummaryLines() const { return {}; }
};

// What a model's TrainStep, Evaluate, OnEpochEnd and OnRunEnd may use: the
// live optimizer, where training stands, and the Trainer's own pieces to
// build on. Implemented by the Trainer.
class TrainingContext {
 public:
  virtual ~TrainingContext() = default;
  virtual const RunConfig& config() const = 0;
  virtual torch::optim::Optimizer& optimizer() = 0;
  // Optimizer steps done (inside TrainStep: before this one), epochs done.
  virtual int64_t step() const = 0;
  virtual int64_t epoch() const = 0;
  // This process's rank and the number of ranks (0 and 1 unless
  // distributed).
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  virtual const std::string& run_dir() const = 0;
  // The run's data, as its data source made it (DataSplits::more included).
  virtual const DataSplits& data() const = 0;
  // Rank 0 (or the only process) writes files into run_dir().
  virtual bool writes_outputs() const = 0;
  // The Trainer's step: Forward, Loss, backward, SynchronizeGradients,
  // clipping (optim_config.grad_clip_norm) and the optimizer's step.
  virtual absl::StatusOr<double> StandardTrainStep(const Batch& batch) = 0;
  // Replaces every gradient by its mean over the ranks (a no-op alone): a
  // TrainStep of its own calls it between backward() and the optimizer step.
  virtual absl::Status SynchronizeGradients() = 0;
  // The score_config metrics (loss, accuracy, f1, ...) of Forward's logits
  // on `data` against its class targets.
  virtual absl::StatusOr<std::map<std::string, double>> StandardEvaluate(
      const Dataset& data) = 0;
  // A scalar to TensorBoard under `tag` at the current step.
  virtual void LogScalar(const std::string& tag, double value) = 0;
};

struct ModelContext {
  const RunConfig* config = nullptr;
  // Where the config came from, for error messages ("configs/mlp.json").
  std::string config_source;
  DataSpec data;
};

// What a data source's factory gets: the whole config (its own section is
// data_config.source_config; a source may read others, as the quine's
// coordinates read model_config) and where it came from.
struct DataSourceContext {
  const RunConfig* config = nullptr;
  std::string config_source;
};

struct OptimizerContext {
  std::vector<at::Tensor> parameters;
  const OptimConfig* config = nullptr;
  std::string config_source;
};

// A pipeline runs a whole job (train once, tune, run several in parallel).
class Pipeline {
 public:
  virtual ~Pipeline() = default;
  virtual absl::Status Run() = 0;
};

struct PipelineContext {
  const RunConfig* config = nullptr;
  std::string config_source;
  // Created before the pipeline starts; config.json and log.txt are in it.
  std::string run_dir;
  const PluginRegistry* registry = nullptr;
  // This process's threads (--threads, or the wider pool the start-up probe
  // chose, threads.h): what its child runs may use at most.
  int num_threads = 1;
  // True when main was asked to continue the run in run_dir (--resume).
  bool resuming = false;
  // The checkpoint file to continue from, or empty (none found: a pipeline
  // without checkpoints, such as a tune, continues from its own records).
  std::string resume_from;
};

}  // namespace ouroboros

#endif  // OUROBOROS_API_INTERFACES_H_
