#include "ouroboros/train/trainer.h"

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/optimizer.h>
#include <torch/utils.h>

#include <chrono>
#include <csignal>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "glog/logging.h"
#include "ouroboros/api/schedule.h"
#include "ouroboros/api/score_record.h"
#include "ouroboros/base/errors.h"
#include "ouroboros/base/progress.h"
#include "ouroboros/base/status_macros.h"
#include "ouroboros/base/stop_signal.h"
#include "ouroboros/distributed/distributed.h"
#include "ouroboros/distributed/gradient_reducer.h"
#include "ouroboros/runs/event_writer.h"
#include "ouroboros/runs/plots.h"
#include "ouroboros/runs/run_layout.h"
#include "ouroboros/runs/run_records.h"

namespace ouroboros {
namespace {

std::vector<std::string> MetricNames(const ScoreConfig& score) {
  if (score.metrics().empty()) return {"loss", "accuracy"};
  return {score.metrics().begin(), score.metrics().end()};
}

}  // namespace

Trainer::Trainer(PipelineContext context) : context_(std::move(context)) {}
Trainer::~Trainer() = default;

absl::StatusOr<double> Trainer::StandardTrainStep(const Batch& batch) {
  double loss_value = 0;
  absl::Status status = CallTorch("training step", [&] {
    at::Tensor outputs = model_->Forward(batch.inputs);
    at::Tensor loss = model_->Loss(outputs, batch.targets);
    loss_value = loss.item<double>();
    if (!std::isfinite(loss_value)) return;  // reported by the caller
    optimizer_->zero_grad();
    // The stop vote rides on the gradients, as in SynchronizeGradients.
    if (reducer_ != nullptr) reducer_->Arm(StopSignal() != 0 ? 1 : 0);
    loss.backward();
  });
  if (!status.ok()) {
    if (reducer_ != nullptr) reducer_->Disarm();
    return status;
  }
  if (!std::isfinite(loss_value)) return loss_value;
  RETURN_IF_ERROR(SynchronizeGradients());
  status = CallTorch("optimizer step", [&] {
    if (config().optim_config().grad_clip_norm() > 0) {
      torch::nn::utils::clip_grad_norm_(
          model_->module().parameters(),
          config().optim_config().grad_clip_norm());
    }
    optimizer_->step();
  });
  if (!status.ok()) return status;
  return loss_value;
}

absl::StatusOr<std::map<std::string, double>> Trainer::Evaluate(
    Split split, const Dataset& data) {
  return model_->Evaluate(split, data, *this);
}

absl::StatusOr<std::map<std::string, double>> Trainer::StandardEvaluate(
    const Dataset& data) {
  std::map<std::string, double> result;
  absl::Status status = CallTorch("evaluation", [&] {
    torch::NoGradGuard no_grad;
    model_->module().eval();
    const int64_t chunk =
        std::max<int64_t>(1024, config().run_config().batch_size());
    std::vector<at::Tensor> logits;
    for (int64_t start = 0; start < data.size(); start += chunk) {
      logits.push_back(
          model_->Forward(data.inputs.slice(0, start, start + chunk)));
    }
    model_->module().train();
    ClassificationMetrics m =
        ComputeClassificationMetrics(at::cat(logits), data.targets);
    for (const std::string& name : MetricNames(config().score_config())) {
      result[name] = m.Get(name);
    }
  });
  if (!status.ok()) return status;
  return result;
}

int64_t Trainer::step() const { return state_.position.step; }
int64_t Trainer::epoch() const { return state_.position.epoch; }
int Trainer::world_size() const {
  return group_ != nullptr ? group_->config().world_size : 1;
}
const std::string& Trainer::run_dir() const { return context_.run_dir; }

absl::Status Trainer::SynchronizeGradients() {
  if (group_ == nullptr) return absl::OkStatus();
  // The stop vote rides on the gradients: no message of its own per step.
  int votes = StopSignal() != 0 ? 1 : 0;
  if (reducer_ != nullptr && reducer_->armed()) {
    // The standard step's backward has started the buckets already.
    absl::StatusOr<int> reduced = reducer_->Finish();
    if (!reduced.ok()) return reduced.status();
    votes = *reduced;
  } else {
    RETURN_IF_ERROR(
        group_->AverageGradients(model_->module().parameters(), &votes));
  }
  stop_votes_ = votes;
  stop_votes_exchanged_ = true;
  return absl::OkStatus();
}

absl::StatusOr<bool> Trainer::AgreeToStop() {
  if (group_ == nullptr) return StopSignal() != 0;
  if (!stop_votes_exchanged_) {
    // A TrainStep that did not call SynchronizeGradients: vote alone.
    at::Tensor votes = at::full({1}, StopSignal() != 0 ? 1.0 : 0.0);
    RETURN_IF_ERROR(group_->SumInPlace(votes));
    stop_votes_ = static_cast<int>(std::lround(votes.item<double>()));
  }
  stop_votes_exchanged_ = false;
  // A rank stopping for another rank's signal ends as that rank does.
  if (stop_votes_ > 0 && StopSignal() == 0) RequestStop(SIGTERM);
  return stop_votes_ > 0;
}

int Trainer::rank() const {
  return group_ != nullptr ? group_->config().rank : 0;
}

bool Trainer::writes_outputs() const { return rank() == 0; }

void Trainer::LogScalar(const std::string& tag, double value) {
  if (events_ == nullptr) return;
  absl::Status status = events_->AddScalar(tag, state_.position.step, value);
  if (!status.ok()) LOG(WARNING) << "TensorBoard: " << status.message();
}

void Trainer::LogHistogram(const std::string& tag, const at::Tensor& values) {
  if (events_ == nullptr) return;
  at::Tensor flat = values.detach().flatten().to(at::kFloat).contiguous();
  const std::vector<float> numbers(flat.data_ptr<float>(),
                                   flat.data_ptr<float>() + flat.numel());
  absl::Status status =
      events_->AddHistogram(tag, state_.position.step, numbers);
  if (!status.ok()) LOG(WARNING) << "TensorBoard: " << status.message();
}

void Trainer::EndRunEarly(const std::string& reason) {
  if (stop_reason_.empty()) stop_reason_ = reason;
}

absl::StatusOr<std::map<std::string, double>> Trainer::EvaluateSplit(
    Split split) {
  const Dataset* data = split == Split::kValidation ? &data_.val
                        : split == Split::kTest     ? &data_.test
                                                    : &data_.train;
  if (data->size() == 0) return std::map<std::string, double>();
  return Evaluate(split, *data);
}

absl::StatusOr<TrainResult> Trainer::Run() {
  RETURN_IF_ERROR(Setup());
  RETURN_IF_ERROR(BuildHooks());
  ASSIGN_OR_RETURN(const int64_t steps_per_epoch, StepsPerEpoch());
  TrainResult result;
  // Resumed at the run's last step: no step runs, the checkpoint's counts.
  result.last_train_loss = state_.last_train_loss;
  result.val = state_.last_val;
  for (int64_t epoch = state_.position.epoch;
       epoch < config().run_config().epochs() && stop_reason_.empty();
       ++epoch) {
    ASSIGN_OR_RETURN(EpochLoss loss,
                     TrainEpoch(epoch, steps_per_epoch, &result));
    // run_config.max_steps or a hook's stop, inside the epoch.
    if (loss.cut_short) break;
    RETURN_IF_ERROR(EndEpoch(epoch, loss, &result));
    if (loss.reached_max_steps) break;
  }
  return FinishRun(std::move(result));
}

absl::StatusOr<int64_t> Trainer::StepsPerEpoch() const {
  const TrainConfig& run = config().run_config();
  const int64_t n = data_.train.size();
  const int world = world_size();
  const int64_t steps = world == 1
                            ? (n + run.batch_size() - 1) / run.batch_size()
                            : n / (run.batch_size() * world);
  if (steps == 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "run_config.batch_size %d x %d ranks is more than the %d training "
        "samples",
        run.batch_size(), world, n));
  }
  return steps;
}

absl::StatusOr<Trainer::EpochLoss> Trainer::TrainEpoch(int64_t epoch,
                                                       int64_t steps_per_epoch,
                                                       TrainResult* result) {
  const TrainConfig& run = config().run_config();
  const OptimConfig& optim = config().optim_config();
  TrainingPosition& position = state_.position;
  BatchLoader loader(
      data_.train, run.batch_size(), RankEpochOrder(epoch, steps_per_epoch),
      position.batch_in_epoch, config().data_config().prefetch_batches());
  ProgressBar bar(absl::StrFormat("epoch %d/%d", epoch + 1, run.epochs()),
                  loader.num_batches(), position.batch_in_epoch);
  std::vector<at::Tensor> buffers;
  if (group_ != nullptr) buffers = model_->module().buffers();
  model_->module().train();
  EpochLoss loss;
  // Resumed mid-epoch: the steps before the checkpoint count too.
  if (position.batch_in_epoch > 0) {
    loss.sum = state_.epoch_loss_sum;
    loss.count = state_.epoch_loss_count;
    loss.last_lr = state_.epoch_last_lr;
  }
  while (std::optional<Batch> batch = loader.Next()) {
    if (run.max_steps() > 0 && position.step >= run.max_steps()) {
      loss.reached_max_steps = true;
      break;
    }
    const double lr = ScheduledLearningRate(optim.scheduler(), optim.lr(),
                                            position.step, steps_per_epoch);
    ASSIGN_OR_RETURN(const double step_loss,
                     OptimizerStep(*std::move(batch), lr, epoch, buffers));
    ++position.step;
    ++position.batch_in_epoch;
    loss.sum += step_loss;
    loss.last_lr = lr;
    ++loss.count;
    result->last_train_loss = step_loss;
    state_.last_train_loss = step_loss;
    state_.epoch_loss_sum = loss.sum;
    state_.epoch_loss_count = loss.count;
    state_.epoch_last_lr = lr;
    bar.Update(position.batch_in_epoch,
               absl::StrFormat("loss %.4f lr %.3g", step_loss, lr));
    RETURN_IF_ERROR(EndStep(step_loss, lr));
    ASSIGN_OR_RETURN(const bool stopping, AgreeToStop());
    if (stopping) return StopForSignal(loader.num_batches());
    if (!stop_reason_.empty()) break;
  }
  bar.Finish();
  loss.cut_short = (loss.reached_max_steps || !stop_reason_.empty()) &&
                   position.batch_in_epoch < loader.num_batches();
  return loss;
}

at::Tensor Trainer::RankEpochOrder(int64_t epoch,
                                   int64_t steps_per_epoch) const {
  const int64_t batch_size = config().run_config().batch_size();
  const int world = world_size();
  at::Tensor order = EpochOrder(data_.train.size(), config().seed(), epoch);
  if (world == 1) return order;
  // This rank's slice of every global batch, in the same order.
  return order.narrow(0, 0, steps_per_epoch * batch_size * world)
      .view({steps_per_epoch, world, batch_size})
      .select(1, rank())
      .reshape({-1});
}

absl::StatusOr<double> Trainer::OptimizerStep(
    Batch batch, double lr, int64_t epoch,
    const std::vector<at::Tensor>& buffers) {
  for (auto& group : optimizer_->param_groups()) {
    group.options().set_lr(lr);
  }
  if (!buffers.empty()) {
    // As DDP does by default: every rank's forward sees rank 0's
    // buffers (BatchNorm running statistics).
    RETURN_IF_ERROR(group_->BroadcastFromRankZero(buffers));
  }
  if (data_.train.generator != nullptr) {
    ASSIGN_OR_RETURN(batch, data_.train.generator->Draw(batch.inputs.size(0),
                                                        step(), rank()));
  }
  ASSIGN_OR_RETURN(const double loss, model_->TrainStep(batch, *this));
  if (!std::isfinite(loss)) {
    return absl::InternalError(absl::StrFormat(
        "loss became %f at step %d (epoch %d); lower optim_config.lr or "
        "set optim_config.grad_clip_norm. The last good checkpoint: %s",
        loss, step() + 1, epoch + 1,
        last_checkpoint_.empty() ? "(none yet)" : last_checkpoint_));
  }
  return loss;
}

absl::Status Trainer::EndStep(double loss, double lr) {
  const TrainConfig& run = config().run_config();
  const int64_t step = state_.position.step;
  if (run.log_every_steps() > 0 && step % run.log_every_steps() == 0) {
    LogScalar("train/loss", loss);
    LogScalar("train/lr", lr);
    if (writes_outputs()) {
      RETURN_IF_ERROR(AppendStepLogRecord(
          context_.run_dir,
          StepLogRecord{step, state_.position.epoch + 1, loss, lr}));
    }
  }
  return ForEachHook([](TrainerHook& hook, const TrainingView& view) {
    return hook.OnStepEnd(view);
  });
}

absl::Status Trainer::EndEpoch(int64_t epoch, const EpochLoss& loss,
                               TrainResult* result) {
  const TrainConfig& run = config().run_config();
  TrainingPosition& position = state_.position;
  position.epoch = epoch + 1;
  position.batch_in_epoch = 0;
  std::map<std::string, double> model_metrics;
  RETURN_IF_ERROR(model_->OnEpochEnd(epoch, *this, &model_metrics));
  RETURN_IF_ERROR(ForEachHook(
      [&model_metrics](TrainerHook& hook, const TrainingView& view) {
        return hook.OnEpochEnd(view, &model_metrics);
      }));
  const double mean_loss = loss.count > 0 ? loss.sum / loss.count : 0.0;
  std::string line =
      absl::StrFormat("epoch %d/%d: step %d, train loss %.4f", epoch + 1,
                      run.epochs(), position.step, mean_loss);
  if (loss.count > 0) LogScalar("epoch/train_loss", mean_loss);
  for (const auto& [name, value] : model_metrics) {
    LogScalar("model/" + name, value);
  }
  if (!model_metrics.empty()) {
    line += "; model: " + FormatMetrics(model_metrics);
  }
  const bool has_val = data_.val.size() > 0;
  const Split split = has_val ? Split::kValidation : Split::kTest;
  const std::string monitored(SplitName(split));
  EpochEvaluation evaluation;
  evaluation.split = split;
  ASSIGN_OR_RETURN(evaluation.metrics,
                   Evaluate(split, has_val ? data_.val : data_.test));
  const std::map<std::string, double>& metrics = evaluation.metrics;
  for (const auto& [name, value] : metrics) {
    LogScalar(absl::StrCat(monitored, "/", name), value);
  }
  if (has_val) {
    result->val = metrics;
    state_.last_val = metrics;
  }
  LOG(INFO) << line << "; " << monitored << ": " << FormatMetrics(metrics);
  if (writes_outputs()) {
    RETURN_IF_ERROR(AppendEpochRecord(
        context_.run_dir,
        EpochRecord{position.epoch, position.step, mean_loss, loss.last_lr,
                    monitored, metrics, model_metrics}));
  }
  evaluation.new_best = CountInScoreRecord(metrics);
  return ForEachHook(
      [&evaluation](TrainerHook& hook, const TrainingView& view) {
        return hook.OnEvaluation(view, evaluation);
      });
}

bool Trainer::CountInScoreRecord(const std::map<std::string, double>& metrics) {
  const ScoreConfig& score = config().score_config();
  if (score.monitor().empty()) return false;
  // Every rank keeps the record (they evaluate alike), so that all agree on
  // when to stop early.
  return UpdateScoreRecord(score, metrics, &state_.score);
}

absl::StatusOr<TrainResult> Trainer::FinishRun(TrainResult result) {
  const TrainingPosition& position = state_.position;
  if (!stop_reason_.empty() &&
      position.epoch < config().run_config().epochs()) {
    result.stopped_early = true;
    LOG(INFO) << stop_reason_;
  }
  result.best_metric = state_.score.best;
  RETURN_IF_ERROR(ForEachHook([](TrainerHook& hook, const TrainingView& view) {
    return hook.OnTrainEnd(view);
  }));
  // The end: always a checkpoint, then the test set.
  RETURN_IF_ERROR(SaveStepCheckpoint());
  result.final_checkpoint = last_checkpoint_;
  result.position = position;
  if (data_.test.size() > 0) {
    ASSIGN_OR_RETURN(result.test, Evaluate(Split::kTest, data_.test));
    for (const auto& [name, value] : result.test) {
      LogScalar("test/" + name, value);
    }
    LOG(INFO) << "test: " << FormatMetrics(result.test);
  }
  if (events_ != nullptr) (void)events_->Flush();
  RETURN_IF_ERROR(model_->OnRunEnd(*this));
  if (events_ != nullptr) {
    (void)events_->AddHparamsEnd(/*success=*/true, WallSeconds());
  }
  if (writes_outputs()) result.family_results = model_->SummaryLines();
  if (writes_outputs() && !config().run_config().skip_plots()) {
    ReportPlots(DrawRunPlots(context_.run_dir, model_->Figures()),
                RunFile(context_.run_dir, kPlotsDir), "the run's figures");
  }
  // Last: main's --resume reads a metrics.json as "this run is finished",
  // so a run killed before it (in the family's meta-test, in the plots)
  // resumes and writes them.
  if (writes_outputs()) RETURN_IF_ERROR(WriteMetricsJson(result));
  return result;
}

TrainerPipeline::TrainerPipeline(std::unique_ptr<Trainer> trainer)
    : trainer_(std::move(trainer)) {}

absl::Status TrainerPipeline::Run() {
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<TrainResult> result = trainer_->Run();
  if (!result.ok()) return result.status();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  LOG(INFO) << absl::StrFormat(
      "finished: %d epoch%s, %d steps, last train loss %.4f; checkpoint %s",
      result->position.epoch, result->position.epoch == 1 ? "" : "s",
      result->position.step, result->last_train_loss, result->final_checkpoint);
  if (trainer_->writes_outputs()) {
    for (const std::string& line : RunSummary(trainer_->config(), *result,
                                              trainer_->run_dir(), seconds)) {
      LOG(INFO) << line;
    }
  }
  return absl::OkStatus();
}

}  // namespace ouroboros
