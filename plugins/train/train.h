// The `train` pipeline (Demo): one Trainer run from the config.
#ifndef PLUGINS_TRAIN_TRAIN_H_
#define PLUGINS_TRAIN_TRAIN_H_

#include <memory>

#include "absl/status/statusor.h"
#include "ouroboros/api/interfaces.h"

namespace ouroboros::train {

absl::StatusOr<std::unique_ptr<Pipeline>> MakeTrainPipeline(
    const PipelineContext& context);

}  // namespace ouroboros::train

#endif  // PLUGINS_TRAIN_TRAIN_H_
