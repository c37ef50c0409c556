// The `train` pipeline: one training run of the configured model on the
// configured data, with the configured optimizer. Logs the training loss
// every run_config.log_every_steps steps and loss/accuracy every epoch.
#ifndef PLUGINS_TRAIN_TRAIN_H_
#define PLUGINS_TRAIN_TRAIN_H_

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "ouroboros/interfaces.h"

namespace ouroboros::train {

struct EpochResult {
  int epoch = 0;
  int64_t steps = 0;  // optimizer steps so far
  double train_loss = 0;
  double accuracy = 0;  // on the training data, in eval mode
};

// Runs the whole training and returns one result per epoch.
absl::StatusOr<std::vector<EpochResult>> Train(const PipelineContext& context);

absl::StatusOr<std::unique_ptr<Pipeline>> MakeTrainPipeline(
    const PipelineContext& context);

}  // namespace ouroboros::train

#endif  // PLUGINS_TRAIN_TRAIN_H_
