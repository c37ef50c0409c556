#include "ouroboros/api/interfaces.h"

#include <ATen/ATen.h>

namespace ouroboros {

absl::string_view SplitName(Split split) {
  switch (split) {
    case Split::kTrain:
      return "train";
    case Split::kValidation:
      return "val";
    case Split::kTest:
      return "test";
  }
  return "?";
}

at::Tensor Model::Loss(const at::Tensor& outputs, const at::Tensor& targets) {
  return at::nll_loss(at::log_softmax(outputs, 1), targets);
}

absl::StatusOr<double> Model::TrainStep(const Batch& batch,
                                        TrainingContext& training) {
  return training.StandardTrainStep(batch);
}

absl::StatusOr<std::map<std::string, double>> Model::Evaluate(
    Split /*split*/, const Dataset& data, TrainingContext& training) {
  return training.StandardEvaluate(data);
}

}  // namespace ouroboros
