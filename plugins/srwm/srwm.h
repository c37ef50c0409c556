// The srwm plugin: model `srwm` (a few-shot sequence learner built on the
// self-referential weight matrix, or one of its baselines) and pipeline
// `fewshot` (meta-training on sequential N-way K-shot episodes).
//
//   srwm_layer.h      the SRWM layer: fused kernel + naive reference
//   fewshot_model.h   Conv-4 encoder + stacked SRWM / baseline blocks
//   episodes.h        class pools and the episode sampler (reusable)
//   fewshot_pipeline.h  the Trainer subclass and the pipeline
#ifndef PLUGINS_SRWM_SRWM_H_
#define PLUGINS_SRWM_SRWM_H_

#include <memory>

#include "absl/status/statusor.h"
#include "ouroboros/interfaces.h"
#include "plugins/srwm/fewshot_model.h"
#include "plugins/srwm/fewshot_pipeline.h"

namespace ouroboros::srwm {

absl::StatusOr<std::unique_ptr<Model>> MakeSrwm(const ModelContext& context);

// model_config and, when the config runs pipeline `fewshot`, pipeline_config.
absl::Status ValidateSrwmConfig(const RunConfig& config);

}  // namespace ouroboros::srwm

#endif  // PLUGINS_SRWM_SRWM_H_
