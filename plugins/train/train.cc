#include "plugins/train/train.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/nn/functional/loss.h>
#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>
#include <torch/utils.h>

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "glog/logging.h"
#include "ouroboros/config.h"
#include "ouroboros/data.h"
#include "ouroboros/errors.h"
#include "ouroboros/plugin_api.h"
#include "ouroboros/registry.h"
#include "plugins/train/train.pb.h"

namespace ouroboros::train {
namespace {

class TrainPipeline : public Pipeline {
 public:
  explicit TrainPipeline(PipelineContext context)
      : context_(std::move(context)) {}

  absl::Status Run() override {
    absl::StatusOr<std::vector<EpochResult>> results = Train(context_);
    if (!results.ok()) return results.status();
    const EpochResult& last = results->back();
    LOG(INFO) << absl::StrFormat(
        "finished: %d epochs, %d steps, train loss %.4f, accuracy %.2f%%",
        last.epoch, last.steps, last.train_loss, 100 * last.accuracy);
    return absl::OkStatus();
  }

 private:
  PipelineContext context_;
};

}  // namespace

absl::Status ValidateTrainConfig(const RunConfig& config) {
  TrainPipelineConfig pipeline_config;
  return ParseConfigSection(config.pipeline_config(), "pipeline_config",
                            &pipeline_config);
}

absl::StatusOr<std::vector<EpochResult>> Train(const PipelineContext& context) {
  const RunConfig& config = *context.config;
  if (absl::Status s = ValidateTrainConfig(config); !s.ok()) {
    return WithContext(s, context.config_source);
  }
  torch::manual_seed(config.seed());
  absl::StatusOr<Dataset> data =
      LoadDataset(config.data_config(), config.seed());
  if (!data.ok()) return WithContext(data.status(), context.config_source);

  absl::StatusOr<const ModelEntry*> model_entry =
      context.registry->FindModel(config.model());
  if (!model_entry.ok()) return model_entry.status();
  ModelContext model_context{&config, context.config_source, data->spec};
  absl::StatusOr<std::unique_ptr<Model>> model =
      (*model_entry)->factory(model_context);
  if (!model.ok()) return model.status();

  absl::StatusOr<const OptimizerEntry*> optimizer_entry =
      context.registry->FindOptimizer(config.optim_config().name());
  if (!optimizer_entry.ok()) return optimizer_entry.status();
  OptimizerContext optimizer_context{(*model)->module().parameters(),
                                     &config.optim_config(),
                                     context.config_source};
  absl::StatusOr<std::unique_ptr<torch::optim::Optimizer>> optimizer =
      (*optimizer_entry)->factory(optimizer_context);
  if (!optimizer.ok()) return optimizer.status();

  const TrainConfig& run = config.run_config();
  const int64_t n = data->inputs.size(0);
  std::vector<EpochResult> results;
  int64_t step = 0;
  absl::Status status = CallTorch("training", [&] {
    at::Generator shuffle_gen =
        at::make_generator<at::CPUGeneratorImpl>(config.seed() ^ 0x5eed5eedULL);
    for (int epoch = 1; epoch <= run.epochs(); ++epoch) {
      (*model)->module().train();
      at::Tensor order = at::randperm(n, shuffle_gen);
      double loss_sum = 0;
      int64_t batches = 0;
      for (int64_t start = 0; start < n; start += run.batch_size()) {
        if (run.max_steps() > 0 && step >= run.max_steps()) break;
        at::Tensor idx = order.slice(
            0, start, std::min<int64_t>(start + run.batch_size(), n));
        at::Tensor logits =
            (*model)->Forward(data->inputs.index_select(0, idx));
        at::Tensor loss = torch::nn::functional::cross_entropy(
            logits, data->targets.index_select(0, idx));
        double loss_value = loss.item<double>();
        if (!std::isfinite(loss_value)) {
          throw std::runtime_error(
              absl::StrCat("loss became ", loss_value, " at step ", step + 1,
                           " (epoch ", epoch, "); lower optim_config.lr?"));
        }
        (*optimizer)->zero_grad();
        loss.backward();
        (*optimizer)->step();
        ++step;
        loss_sum += loss_value;
        ++batches;
        if (run.log_every_steps() > 0 && step % run.log_every_steps() == 0) {
          LOG(INFO) << absl::StrFormat("epoch %d step %d loss %.4f", epoch,
                                       step, loss_value);
        }
      }
      EpochResult result;
      result.epoch = epoch;
      result.steps = step;
      result.train_loss = batches > 0 ? loss_sum / batches : 0;
      (*model)->module().eval();
      {
        torch::NoGradGuard no_grad;
        at::Tensor predicted = (*model)->Forward(data->inputs).argmax(1);
        result.accuracy =
            predicted.eq(data->targets).to(at::kDouble).mean().item<double>();
      }
      LOG(INFO) << absl::StrFormat("epoch %d: train loss %.4f accuracy %.2f%%",
                                   epoch, result.train_loss,
                                   100 * result.accuracy);
      results.push_back(result);
      if (run.max_steps() > 0 && step >= run.max_steps()) break;
    }
  });
  if (!status.ok()) return status;
  return results;
}

absl::StatusOr<std::unique_ptr<Pipeline>> MakeTrainPipeline(
    const PipelineContext& context) {
  return std::make_unique<TrainPipeline>(context);
}

OUROBOROS_REGISTER_PIPELINE("train", "One training run of the configured model",
                            MakeTrainPipeline, ValidateTrainConfig);

}  // namespace ouroboros::train
