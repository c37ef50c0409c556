// The Trainer's set-up stages (Trainer::Setup, trainer.h): the config's
// defaults, the ranks, the data, the model and optimizer, the initial
// weights shared, the outputs, the resume.
#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>
#include <torch/utils.h>

#include "absl/strings/str_format.h"
#include "glog/logging.h"
#include "ouroboros/api/registry.h"
#include "ouroboros/base/errors.h"
#include "ouroboros/base/status_macros.h"
#include "ouroboros/config/config.h"
#include "ouroboros/distributed/distributed.h"
#include "ouroboros/distributed/gradient_reducer.h"
#include "ouroboros/runs/checkpoint.h"
#include "ouroboros/train/trainer.h"

namespace ouroboros {

absl::StatusOr<DataSplits> Trainer::LoadData() {
  absl::StatusOr<const DataSourceEntry*> source =
      context_.registry->FindDataSource(config().data_config().dataset());
  if (!source.ok()) {
    return WithContext(source.status(), "data_config.dataset");
  }
  return (*source)->factory(
      DataSourceContext{context_.config, context_.config_source});
}

absl::StatusOr<std::unique_ptr<Model>> Trainer::BuildModel(
    const DataSpec& spec) {
  absl::StatusOr<const ModelEntry*> entry =
      context_.registry->FindModel(config().model());
  if (!entry.ok()) return entry.status();
  ModelContext model_context{context_.config, context_.config_source, spec};
  return (*entry)->factory(model_context);
}

absl::StatusOr<std::unique_ptr<torch::optim::Optimizer>>
Trainer::BuildOptimizer(Model& model) {
  absl::StatusOr<const OptimizerEntry*> entry =
      context_.registry->FindOptimizer(config().optim_config().name());
  if (!entry.ok()) return entry.status();
  OptimizerContext optimizer_context{model.module().parameters(),
                                     &config().optim_config(),
                                     context_.config_source};
  return (*entry)->factory(optimizer_context);
}

absl::Status Trainer::Setup() {
  // A config built in code (a test's, a composite pipeline's) gets the
  // defaults a config read by main has.
  config_ = *context_.config;
  RETURN_IF_ERROR(FillCoreDefaults(&config_));
  if (context_.registry != nullptr) {
    RETURN_IF_ERROR(context_.registry->FillDefaults(&config_));
  }
  context_.config = &config_;
  RETURN_IF_ERROR(ConnectRanks());
  torch::manual_seed(config().seed());
  RETURN_IF_ERROR(SetUpData());
  RETURN_IF_ERROR(SetUpModelAndOptimizer());
  RETURN_IF_ERROR(ShareInitialWeights());
  // Rank 0 (or the only process) writes; the other ranks only read the
  // checkpoint they resume from.
  RETURN_IF_ERROR(writes_outputs() ? PrepareOutputs() : absl::OkStatus());
  if (context_.resuming && context_.resume_from.empty()) {
    // main found no checkpoint to resume from (the run stopped before its
    // first one): say so, by the run directory.
    return FindCheckpoint(context_.run_dir).status();
  }
  if (context_.resume_from.empty()) return absl::OkStatus();
  return ResumeFromCheckpoint();
}

absl::Status Trainer::ConnectRanks() {
  absl::StatusOr<DistributedConfig> distributed = DistributedFromEnvironment();
  if (!distributed.ok()) return distributed.status();
  if (distributed->enabled()) {
    absl::StatusOr<std::unique_ptr<ProcessGroup>> group =
        ProcessGroup::Connect(*distributed);
    if (!group.ok()) return group.status();
    group_ = *std::move(group);
    LOG(INFO) << absl::StrFormat(
        "distributed: rank %d of %d (Gloo on %s, rendezvous %s:%d%s)",
        distributed->rank, distributed->world_size,
        group_->device_description(), distributed->master_addr,
        distributed->master_port,
        distributed->use_agent_store
            ? absl::StrFormat("; torchrun agent's store, restart %d",
                              distributed->restart_count)
            : "");
  }
  return absl::OkStatus();
}

absl::Status Trainer::SetUpData() {
  absl::StatusOr<DataSplits> data = LoadData();
  if (!data.ok()) return data.status();
  data_ = *std::move(data);
  // A model without classes (the quine regresses its own weights) gets no
  // "0 classes".
  LOG(INFO) << absl::StrFormat(
      "data: %s, %d train / %d validation / %d test samples%s",
      config().data_config().dataset(), data_.train.size(), data_.val.size(),
      data_.test.size(),
      data_.spec.num_classes > 0
          ? absl::StrFormat(", %d classes", data_.spec.num_classes)
          : "");
  if (data_.train.size() == 0) {
    return absl::InvalidArgumentError("the training split is empty");
  }
  return absl::OkStatus();
}

absl::Status Trainer::SetUpModelAndOptimizer() {
  absl::StatusOr<std::unique_ptr<Model>> model = BuildModel(data_.spec);
  if (!model.ok()) return model.status();
  model_ = *std::move(model);
  int64_t parameters = 0;
  for (const at::Tensor& p : model_->module().parameters()) {
    parameters += p.numel();
  }
  LOG(INFO) << "model " << config().model() << ": " << parameters
            << " parameters";
  absl::StatusOr<std::unique_ptr<torch::optim::Optimizer>> optimizer =
      BuildOptimizer(*model_);
  if (!optimizer.ok()) return optimizer.status();
  optimizer_ = *std::move(optimizer);
  return absl::OkStatus();
}

absl::Status Trainer::ShareInitialWeights() {
  if (group_ == nullptr) return absl::OkStatus();
  // Same seed, same initial weights; the broadcast makes sure of it.
  std::vector<at::Tensor> state = model_->module().parameters();
  for (const at::Tensor& buffer : model_->module().buffers()) {
    state.push_back(buffer);
  }
  RETURN_IF_ERROR(group_->BroadcastFromRankZero(state));
  const DistributedConfig& distributed = group_->config();
  if (distributed.overlap_backward) {
    absl::StatusOr<std::unique_ptr<GradientReducer>> reducer =
        GradientReducer::Create(group_.get(), model_->module().parameters(),
                                int64_t{distributed.bucket_kib} << 10);
    if (!reducer.ok()) return reducer.status();
    reducer_ = *std::move(reducer);
    LOG(INFO) << absl::StrFormat(
        "distributed: gradients averaged during the backward, in %d "
        "buckets of <= %d KiB (OUROBOROS_DIST_OVERLAP=0: after it)",
        reducer_->buckets(), distributed.bucket_kib);
  }
  return absl::OkStatus();
}

}  // namespace ouroboros
