#include "plugins/train/train.h"

#include "ouroboros/api/plugin_api.h"
#include "ouroboros/base/errors.h"
#include "ouroboros/config/config.h"
#include "ouroboros/train/trainer.h"
#include "plugins/train/train.pb.h"

namespace ouroboros::train {
namespace {

absl::Status ValidateTrainConfig(const RunConfig& config) {
  return ParseSection<TrainPipelineConfig>(config.pipeline_config(),
                                           "pipeline_config")
      .status();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Pipeline>> MakeTrainPipeline(
    const PipelineContext& context) {
  if (absl::Status s = ValidateTrainConfig(*context.config); !s.ok()) {
    return WithContext(s, context.config_source);
  }
  return std::make_unique<TrainerPipeline>(std::make_unique<Trainer>(context));
}

OUROBOROS_REGISTER_PIPELINE(kDefaultPipeline,
                            "One Trainer run of the configured model (Demo)",
                            MakeTrainPipeline, ValidateTrainConfig,
                            SectionDefaultsOf<TrainPipelineConfig>());

}  // namespace ouroboros::train
