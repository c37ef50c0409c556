#include "plugins/quine/quine_trainer.h"

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "glog/logging.h"
#include "ouroboros/config.h"
#include "ouroboros/errors.h"
#include "ouroboros/plugin_api.h"
#include "ouroboros/status_macros.h"

namespace ouroboros::quine {

QuineTrainer::QuineTrainer(PipelineContext context)
    : Trainer(std::move(context)) {}

absl::StatusOr<DataSplits> QuineTrainer::LoadData() {
  absl::StatusOr<QuineConfig> parsed = ParseQuineConfig(config());
  if (!parsed.ok())
    return WithContext(parsed.status(), context().config_source);
  quine_config_ = *std::move(parsed);
  if (IsAuxiliary(quine_config_)) return Trainer::LoadData();
  // The vanilla quine's only data are its own coordinates.
  DataSplits splits;
  absl::Status status = CallTorch("listing the quine's coordinates", [&] {
    const int64_t n = MakeQuineLayout(quine_config_, 0).num_parameters;
    Dataset coordinates;
    coordinates.inputs = at::arange(n, at::kFloat).unsqueeze(1);
    coordinates.targets = at::arange(n, at::kLong);
    coordinates.spec = DataSpec{{1}, 0};
    splits =
        DataSplits{coordinates, coordinates, coordinates, coordinates.spec};
  });
  if (!status.ok()) return status;
  return splits;
}

namespace {

absl::Status WrongModelError(const std::string& model) {
  return ConfigFieldError(
      "pipeline",
      absl::StrCat("'", kQuinePipeline,
                   "' trains the quine model only (got model '", model, "')"));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Model>> QuineTrainer::BuildModel(
    const DataSpec& spec) {
  absl::StatusOr<std::unique_ptr<Model>> model = Trainer::BuildModel(spec);
  if (!model.ok()) return model.status();
  quine_ = dynamic_cast<QuineModel*>(model->get());
  if (quine_ == nullptr) {
    return WrongModelError(config().model());
  }
  LOG(INFO) << absl::StrFormat(
      "quine: %s, %d parameters, initial sum(theta^2) %.4g",
      quine_config_.variant(), quine_->num_parameters(),
      quine_->initial_weight_sq());
  return model;
}

absl::StatusOr<std::map<std::string, double>> QuineTrainer::Evaluate(
    const Dataset& data) {
  std::map<std::string, double> metrics;
  if (quine_->auxiliary()) {
    absl::StatusOr<std::map<std::string, double>> task =
        Trainer::Evaluate(data);
    if (!task.ok()) return task.status();
    metrics = *std::move(task);
  }
  absl::Status status = CallTorch("quine evaluation", [&] {
    ReplicationStats stats = quine_->Stats();
    metrics["sr_loss"] = stats.sr_loss;
    metrics["rho"] = stats.rho;
    metrics["weight_sq"] = stats.weight_sq;
  });
  if (!status.ok()) return status;
  return metrics;
}

absl::Status QuineTrainer::OnEpochEnd(int64_t epoch,
                                      std::map<std::string, double>* metrics) {
  const bool regenerates = quine_->RegeneratesAfter(epoch);
  RETURN_IF_ERROR(Trainer::OnEpochEnd(epoch, metrics));
  if (regenerates) {
    // Adamax's moments describe the gradients of weights that were just
    // replaced; the new generation starts with a fresh optimizer, as a new
    // network would (see README.md).
    optimizer().state().clear();
  }
  return absl::OkStatus();
}

absl::Status ValidateQuinePipelineConfig(const RunConfig& config) {
  ASSIGN_OR_RETURN(QuinePipelineConfig pipeline_config,
                   ParseSection<QuinePipelineConfig>(config.pipeline_config(),
                                                     "pipeline_config"));
  if (config.model() != "quine") {
    return WrongModelError(config.model());
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Pipeline>> MakeQuinePipeline(
    const PipelineContext& context) {
  if (absl::Status s = ValidateQuinePipelineConfig(*context.config); !s.ok()) {
    return WithContext(s, context.config_source);
  }
  return std::make_unique<TrainerPipeline>(
      std::make_unique<QuineTrainer>(context));
}

OUROBOROS_REGISTER_PIPELINE(kQuinePipeline,
                            "Trains a quine: self-replication (+ task) loss, "
                            "regeneration every T epochs",
                            MakeQuinePipeline, ValidateQuinePipelineConfig);

}  // namespace ouroboros::quine
