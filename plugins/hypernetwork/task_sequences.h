// Task sequences for continual learning, as data sources over any of the
// core's image sources (data_config.source_config: TaskSequenceConfig):
//
//   permuted  task t sees the base images with a pixel permutation of its
//             own, drawn from the seed (task 1 unpermuted); every task has
//             the base classes.
//   split     task t sees classes_per_task consecutive classes of the base
//             images (SplitMNIST: 0/1, 2/3, ...), relabelled 0..k-1.
//
//   "data_config": {"dataset": "permuted", "source_config": {
//       "images": "mnist_digits", "tasks": 10}}
//
// One task per Trainer epoch: the training split is drawn by a generator
// whose step decides the task (sequential schedule) or mixes every task
// (joint schedule), so run_config.epochs is the task count and a resumed
// run draws what the interrupted one would have. Every batch, and every
// validation and test sample, carries its task in extras["task"] (int64);
// the validation and test splits hold every task's samples, task after task.
#ifndef PLUGINS_HYPERNETWORK_TASK_SEQUENCES_H_
#define PLUGINS_HYPERNETWORK_TASK_SEQUENCES_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "ouroboros/api/interfaces.h"
#include "plugins/hypernetwork/hypernetwork.pb.h"

namespace ouroboros::hypernetwork {

inline constexpr char kPermutedSource[] = "permuted";
inline constexpr char kSplitSource[] = "split";
// Batch::extras and Dataset::extras: the task of each sample (0-based).
inline constexpr char kTaskExtra[] = "task";

// True for the two task-sequence sources.
bool IsTaskSequence(const RunConfig& config);

// The split source's task count when the config leaves it out: the base
// images' classes over classes_per_task (mnist_digits and fashion_mnist
// have 10, synthetic its num_classes).
void FillDerivedTaskSequenceDefaults(TaskSequenceConfig* sequence,
                                     const RunConfig& config);

// Parses and checks data_config.source_config against the rest of the
// config: a task count the base images can supply, run_config.epochs equal
// to it, a known schedule. Errors read "<field.path>: reason".
absl::StatusOr<TaskSequenceConfig> ParseTaskSequenceConfig(
    const RunConfig& config);

// The data source of both names.
absl::StatusOr<DataSplits> MakeTaskSequence(const DataSourceContext& context);

}  // namespace ouroboros::hypernetwork

#endif  // PLUGINS_HYPERNETWORK_TASK_SEQUENCES_H_
