#include "plugins/srwm/srwm.h"

#include "ouroboros/plugin_api.h"
#include "plugins/srwm/default_config.h"

namespace ouroboros::srwm {

absl::StatusOr<std::unique_ptr<Model>> MakeSrwm(const ModelContext& context) {
  return MakeFewShotModel(context);
}

absl::Status ValidateSrwmConfig(const RunConfig& config) {
  return ParseSrwmConfig(config).status();
}

OUROBOROS_REGISTER_MODEL(
    "srwm",
    "Few-shot learner on a self-referential weight matrix (or its baselines "
    "DeltaNet, Fake-SR, LSTM); run with pipeline fewshot",
    MakeSrwm, kDefaultConfigJson, ValidateSrwmConfig);
OUROBOROS_REGISTER_PIPELINE(
    "fewshot",
    "Meta-training on sequential N-way K-shot episodes (rotated "
    "Fashion-MNIST classes; MNIST digits cross-domain)",
    MakeFewshotPipeline, ValidateFewshotConfig);

}  // namespace ouroboros::srwm
