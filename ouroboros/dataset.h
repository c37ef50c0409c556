// What a training run reads: samples as tensors, their splits, and one batch.
// Light on purpose (interfaces.h includes it); the loaders and the batch
// iterator are in data.h.
#ifndef OUROBOROS_DATASET_H_
#define OUROBOROS_DATASET_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "absl/strings/string_view.h"

namespace ouroboros {

// What the data looks like to a model: one sample's shape and the number of
// classes to predict (0 when the targets are not classes).
struct DataSpec {
  std::vector<int64_t> input_shape;
  int64_t num_classes = 0;
};

// N samples. Image datasets hold float32 inputs (N x input_shape) and int64
// class indices; a data source may hold other tensors (the quine's int64
// coordinates) as long as its models read them.
struct Dataset {
  at::Tensor inputs;
  at::Tensor targets;
  DataSpec spec;
  int64_t size() const { return inputs.defined() ? inputs.size(0) : 0; }
};

struct DataSplits {
  Dataset train;
  Dataset val;  // may be empty (val_fraction 0)
  Dataset test;
  DataSpec spec;
};

enum class Split { kTrain, kValidation, kTest };
// "train", "val", "test" (as in metrics.json and epochs.jsonl).
absl::string_view SplitName(Split split);

struct Batch {
  at::Tensor inputs;
  at::Tensor targets;
};

}  // namespace ouroboros

#endif  // OUROBOROS_DATASET_H_
