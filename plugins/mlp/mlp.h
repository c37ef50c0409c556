// The "classical" baseline: a multi-layer perceptron over the flattened
// input, registered as model `mlp`.
//
// model_config: {"layer_sizes": [256, 128], "activation": "relu",
//                "dropout": 0.1}
// Forward: (batch x input_shape) -> flatten -> [Linear -> activation ->
// dropout] per hidden layer -> Linear -> (batch x num_classes) logits.
#ifndef PLUGINS_MLP_MLP_H_
#define PLUGINS_MLP_MLP_H_

#include <memory>

#include "absl/status/statusor.h"
#include "ouroboros/api/interfaces.h"
#include "plugins/mlp/mlp.pb.h"

namespace ouroboros::mlp {

// Parses and validates model_config ("model_config.<field>: reason").
absl::StatusOr<MlpConfig> ParseMlpConfig(const RunConfig& config);

absl::StatusOr<std::unique_ptr<Model>> MakeMlp(const ModelContext& context);

}  // namespace ouroboros::mlp

#endif  // PLUGINS_MLP_MLP_H_
