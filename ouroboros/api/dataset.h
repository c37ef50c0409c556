// What a training run reads: samples as tensors, their splits, and one batch.
// Light on purpose (interfaces.h includes it); the loaders and the batch
// iterator are in data.h.
#ifndef OUROBOROS_API_DATASET_H_
#define OUROBOROS_API_DATASET_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "ouroboros/api/component_state.h"

namespace ouroboros {

// What the data looks like to a model: one sample's shape and the number of
// classes to predict (0 when the targets are not classes).
struct DataSpec {
  std::vector<int64_t> input_shape;
  int64_t num_classes = 0;
};

struct Batch {
  at::Tensor inputs;
  at::Tensor targets;
  // Per-sample tensors beside them (first dimension the batch's size), as
  // the data source put them in Dataset::extras or its generator draws
  // them: e.g. "task", the task each sample belongs to in a continual run.
  std::map<std::string, at::Tensor> extras;
};

// Training samples made on demand rather than stored, e.g. few-shot
// episodes drawn afresh for every step. One that keeps state between draws
// saves it through Stateful (component_state.h); the Trainer checkpoints
// the training split's generator.
class SampleGenerator : public Stateful {
 public:
  virtual ~SampleGenerator() = default;
  // `count` samples for optimizer step `step` (0-based: the steps done
  // before it) on `rank`. The same arguments give the same samples, so a
  // resumed run draws what the interrupted one would have, and ranks draw
  // different ones.
  virtual absl::StatusOr<Batch> Draw(int64_t count, int64_t step, int rank) = 0;
};

// N samples. Image datasets hold float32 inputs (N x input_shape) and int64
// class indices; a data source may hold other tensors (the quine's int64
// coordinates, episodes) as long as its models read them.
struct Dataset {
  at::Tensor inputs;
  at::Tensor targets;
  DataSpec spec;
  // Per-sample tensors (first dimension N) a data source adds for its
  // models' Evaluate, e.g. "is_query": which steps of an episode are scored.
  std::map<std::string, at::Tensor> extras;
  // A training split may be drawn instead of stored: `generated_size`
  // samples an epoch, each batch drawn at its step (inputs stay empty).
  std::shared_ptr<SampleGenerator> generator;
  int64_t generated_size = 0;
  int64_t size() const {
    if (generator != nullptr) return generated_size;
    return inputs.defined() ? inputs.size(0) : 0;
  }
};

struct DataSplits {
  Dataset train;
  Dataset val;  // may be empty (val_fraction 0)
  Dataset test;
  DataSpec spec;
  // Further evaluation sets a data source offers by name (not scored by the
  // Trainer; a model's OnRunEnd may), e.g. "mnist_digits" cross-domain
  // episodes.
  std::map<std::string, Dataset> more;
};

enum class Split { kTrain, kValidation, kTest };
// "train", "val", "test" (as in metrics.json and epochs.jsonl).
absl::string_view SplitName(Split split);

}  // namespace ouroboros

#endif  // OUROBOROS_API_DATASET_H_
