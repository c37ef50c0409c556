// The srwm plugin: model `srwm` (a few-shot sequence learner built on the
// self-referential weight matrix, or one of its baselines) and data source
// `fewshot_episodes` (sequential N-way K-shot episodes), trained by the
// plain `train` pipeline.
//
//   srwm_layer.h       the SRWM layer: fused kernel + naive reference
//   fewshot_model.h    Conv-4 encoder + stacked SRWM / baseline blocks
//   episodes.h         class pools and the episode sampler (reusable)
//   episode_source.h   the data source, few-shot scores, the meta-test
#ifndef PLUGINS_SRWM_SRWM_H_
#define PLUGINS_SRWM_SRWM_H_

#include <memory>

#include "absl/status/statusor.h"
#include "ouroboros/api/interfaces.h"
#include "plugins/srwm/episode_source.h"
#include "plugins/srwm/fewshot_model.h"

namespace ouroboros::srwm {

absl::StatusOr<std::unique_ptr<Model>> MakeSrwm(const ModelContext& context);

// model_config, and that the data are episodes.
absl::Status ValidateSrwmConfig(const RunConfig& config);

}  // namespace ouroboros::srwm

#endif  // PLUGINS_SRWM_SRWM_H_
