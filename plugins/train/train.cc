#include "plugins/train/train.h"

#include "absl/strings/str_format.h"
#include "glog/logging.h"
#include "ouroboros/config.h"
#include "ouroboros/errors.h"
#include "ouroboros/plugin_api.h"
#include "ouroboros/trainer.h"
#include "plugins/train/train.pb.h"

namespace ouroboros::train {
namespace {

class TrainPipeline : public Pipeline {
 public:
  explicit TrainPipeline(PipelineContext context)
      : trainer_(std::move(context)) {}

  absl::Status Run() override {
    absl::StatusOr<TrainResult> result = trainer_.Run();
    if (!result.ok()) return result.status();
    LOG(INFO) << absl::StrFormat(
        "finished: %d epochs, %d steps, last train loss %.4f; checkpoint %s",
        result->position.epoch, result->position.step, result->last_train_loss,
        result->final_checkpoint);
    return absl::OkStatus();
  }

 private:
  Trainer trainer_;
};

absl::Status ValidateTrainConfig(const RunConfig& config) {
  TrainPipelineConfig pipeline_config;
  return ParseConfigSection(config.pipeline_config(), "pipeline_config",
                            &pipeline_config);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Pipeline>> MakeTrainPipeline(
    const PipelineContext& context) {
  if (absl::Status s = ValidateTrainConfig(*context.config); !s.ok()) {
    return WithContext(s, context.config_source);
  }
  return std::make_unique<TrainPipeline>(context);
}

OUROBOROS_REGISTER_PIPELINE("train",
                            "One Trainer run of the configured model (Demo)",
                            MakeTrainPipeline, ValidateTrainConfig);

}  // namespace ouroboros::train
