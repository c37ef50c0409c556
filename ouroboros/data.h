// Datasets held in memory as tensors, made from the data_config section.
//
//   absl::StatusOr<Dataset> data = LoadDataset(config.data_config(), seed);
//   model_context.data = data->spec;
#ifndef OUROBOROS_DATA_H_
#define OUROBOROS_DATA_H_

#include <ATen/core/Tensor.h>

#include <cstdint>

#include "absl/status/statusor.h"
#include "ouroboros/config.pb.h"
#include "ouroboros/interfaces.h"

namespace ouroboros {

struct Dataset {
  at::Tensor inputs;   // float32, N x input_shape
  at::Tensor targets;  // int64, N, class indices in [0, num_classes)
  DataSpec spec;
};

// Gaussian clusters, one per class, reproducible from the seed.
absl::StatusOr<Dataset> MakeSyntheticDataset(const SyntheticData& config,
                                             uint64_t seed);

// Dispatches on config.dataset().
absl::StatusOr<Dataset> LoadDataset(const DataConfig& config, uint64_t seed);

}  // namespace ouroboros

#endif  // OUROBOROS_DATA_H_
