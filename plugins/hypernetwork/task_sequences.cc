#include "plugins/hypernetwork/task_sequences.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "ouroboros/api/data.h"
#include "ouroboros/base/errors.h"
#include "ouroboros/base/status_macros.h"
#include "ouroboros/config/config.h"
#include "ouroboros/config/config_checks.h"

namespace ouroboros::hypernetwork {
namespace {

constexpr char kSection[] = "data_config.source_config";
constexpr char kSequential[] = "sequential";
constexpr char kJoint[] = "joint";
// Streams of the seed: the permutations, a task's sample order in each pass
// over it, the joint schedule's draws.
constexpr uint64_t kPermutationStream = 0x7065726d;  // "perm"
constexpr uint64_t kOrderStream = 0x6f726472;        // "ordr"
constexpr uint64_t kJointStream = 0x6a6f696e;        // "join"

std::string Field(absl::string_view name) {
  return absl::StrCat(kSection, ".", name);
}

// splitmix64 of the words: one generator per (seed, stream, ...).
at::Generator GeneratorOf(std::initializer_list<uint64_t> words) {
  uint64_t state = 0x9e3779b97f4a7c15ULL;
  for (uint64_t word : words) {
    state ^= word + 0x9e3779b97f4a7c15ULL + (state << 6) + (state >> 2);
    state = (state ^ (state >> 30)) * 0xbf58476d1ce4e5b9ULL;
    state = (state ^ (state >> 27)) * 0x94d049bb133111ebULL;
    state ^= state >> 31;
  }
  return at::make_generator<at::CPUGeneratorImpl>(state);
}

// The classes of the core's image sources, when the config tells them.
int64_t KnownClasses(const RunConfig& config, const std::string& images) {
  if (images == "mnist_digits" || images == "fashion_mnist") return 10;
  if (images == "synthetic") {
    return config.data_config().synthetic().num_classes();
  }
  return 0;  // idx: known once read
}

// The tasks' samples of one split of the base images.
struct TaskSamples {
  at::Tensor inputs;                // the base split (every task's, unpermuted)
  at::Tensor targets;               // the task's labels (split: relabelled)
  std::vector<at::Tensor> indices;  // per task: its rows of `inputs`
  std::vector<at::Tensor> labels;   // per task: its labels, aligned
};

// How task t sees an image batch: permuted through its pixel permutation,
// or as it is.
class TaskView {
 public:
  explicit TaskView(std::vector<at::Tensor> permutations)
      : permutations_(std::move(permutations)) {}
  at::Tensor Apply(const at::Tensor& images, int64_t task) const {
    if (permutations_.empty() || task == 0) return images;
    return images.flatten(1)
        .index_select(1, permutations_[task])
        .view(images.sizes());
  }

 private:
  std::vector<at::Tensor> permutations_;  // empty for split
};

// Every task's samples of `samples`, one after the other, through `view`,
// with extras["task"].
Dataset Concatenate(const TaskSamples& samples, const TaskView& view,
                    const DataSpec& spec) {
  std::vector<at::Tensor> inputs, targets, tasks;
  for (size_t t = 0; t < samples.indices.size(); ++t) {
    inputs.push_back(view.Apply(
        samples.inputs.index_select(0, samples.indices[t]), int64_t(t)));
    targets.push_back(samples.labels[t]);
    tasks.push_back(at::full({samples.indices[t].size(0)}, int64_t(t),
                             at::TensorOptions().dtype(at::kLong)));
  }
  Dataset data;
  data.inputs = at::cat(inputs);
  data.targets = at::cat(targets);
  data.extras[kTaskExtra] = at::cat(tasks);
  data.spec = spec;
  return data;
}

// The training stream: step s of a sequential run trains task s /
// steps_per_task on its samples in a seeded order, pass after pass; a joint
// run draws every sample's task and index at random from the step's seed.
class TaskStream : public SampleGenerator {
 public:
  TaskStream(TaskSamples train, TaskView view, int64_t steps_per_task,
             bool joint, uint64_t seed)
      : train_(std::move(train)),
        view_(std::move(view)),
        steps_per_task_(steps_per_task),
        joint_(joint),
        seed_(seed) {}

  absl::StatusOr<Batch> Draw(int64_t count, int64_t step, int rank) override {
    if (rank != 0) {
      return absl::FailedPreconditionError(
          "a continual run's task stream is drawn by one process: run it "
          "without --nproc or WORLD_SIZE");
    }
    Batch batch;
    RETURN_IF_ERROR(CallTorch("drawing a task batch", [&] {
      batch = joint_ ? DrawJoint(count, step) : DrawTask(count, step);
    }));
    return batch;
  }

 private:
  Batch DrawTask(int64_t count, int64_t step) const {
    const int64_t tasks = static_cast<int64_t>(train_.indices.size());
    const int64_t task = std::min(step / steps_per_task_, tasks - 1);
    const int64_t local = step % steps_per_task_;
    const at::Tensor& rows = train_.indices[task];
    const int64_t n = rows.size(0);
    // Positions local*count .. +count of the task's orders, pass after pass.
    std::vector<at::Tensor> picks;
    int64_t position = local * count;
    int64_t needed = count;
    while (needed > 0) {
      const int64_t pass = position / n, offset = position % n;
      at::Generator gen =
          GeneratorOf({seed_, kOrderStream, uint64_t(task), uint64_t(pass)});
      at::Tensor order = at::randperm(n, gen);
      const int64_t take = std::min(needed, n - offset);
      picks.push_back(order.slice(0, offset, offset + take));
      position += take;
      needed -= take;
    }
    at::Tensor pick = at::cat(picks);
    Batch batch;
    batch.inputs = view_.Apply(
        train_.inputs.index_select(0, rows.index_select(0, pick)), task);
    batch.targets = train_.labels[task].index_select(0, pick);
    batch.extras[kTaskExtra] =
        at::full({count}, task, at::TensorOptions().dtype(at::kLong));
    return batch;
  }

  Batch DrawJoint(int64_t count, int64_t step) const {
    const int64_t tasks = static_cast<int64_t>(train_.indices.size());
    at::Generator gen = GeneratorOf({seed_, kJointStream, uint64_t(step)});
    at::Tensor task_of = at::randint(tasks, {count}, gen, at::kLong);
    at::Tensor unit = at::rand({count}, gen, at::kDouble);
    std::vector<at::Tensor> inputs, targets;
    inputs.reserve(count);
    targets.reserve(count);
    const int64_t* task_data = task_of.data_ptr<int64_t>();
    const double* unit_data = unit.data_ptr<double>();
    for (int64_t i = 0; i < count; ++i) {
      const int64_t t = task_data[i];
      const int64_t n = train_.indices[t].size(0);
      const int64_t k = std::min<int64_t>(int64_t(unit_data[i] * n), n - 1);
      const int64_t row = train_.indices[t][k].item<int64_t>();
      inputs.push_back(view_.Apply(train_.inputs.narrow(0, row, 1), t));
      targets.push_back(train_.labels[t].narrow(0, k, 1));
    }
    Batch batch;
    batch.inputs = at::cat(inputs);
    batch.targets = at::cat(targets);
    batch.extras[kTaskExtra] = task_of;
    return batch;
  }

  TaskSamples train_;
  TaskView view_;
  int64_t steps_per_task_;
  bool joint_;
  uint64_t seed_;
};

// Splits `data` into the tasks: split, by consecutive class groups
// (relabelled); permuted, every sample in every task.
TaskSamples SamplesOf(const Dataset& data, bool split, int64_t tasks,
                      int64_t classes_per_task) {
  TaskSamples samples;
  samples.inputs = data.inputs;
  samples.targets = data.targets;
  for (int64_t t = 0; t < tasks; ++t) {
    if (!split) {
      samples.indices.push_back(at::arange(data.size(), at::kLong));
      samples.labels.push_back(data.targets);
      continue;
    }
    const int64_t first = t * classes_per_task;
    at::Tensor mask = (data.targets >= first)
                          .logical_and(data.targets < first + classes_per_task);
    at::Tensor rows = mask.nonzero().flatten();
    samples.indices.push_back(rows);
    samples.labels.push_back(data.targets.index_select(0, rows) - first);
  }
  return samples;
}

}  // namespace

bool IsTaskSequence(const RunConfig& config) {
  const std::string& dataset = config.data_config().dataset();
  return dataset == kPermutedSource || dataset == kSplitSource;
}

void FillDerivedTaskSequenceDefaults(TaskSequenceConfig* sequence,
                                     const RunConfig& config) {
  if (sequence->has_tasks() || config.data_config().dataset() != kSplitSource ||
      sequence->classes_per_task() < 1) {
    return;
  }
  const int64_t classes = KnownClasses(config, sequence->images());
  if (classes > 0) sequence->set_tasks(classes / sequence->classes_per_task());
}

absl::StatusOr<TaskSequenceConfig> ParseTaskSequenceConfig(
    const RunConfig& config) {
  ASSIGN_OR_RETURN(TaskSequenceConfig sequence,
                   ParseSection<TaskSequenceConfig>(
                       config.data_config().source_config(), kSection));
  FillDerivedTaskSequenceDefaults(&sequence, config);
  const bool split = config.data_config().dataset() == kSplitSource;
  const std::string& images = sequence.images();
  if (images == kPermutedSource || images == kSplitSource || images.empty()) {
    return ConfigFieldError(
        Field("images"),
        absl::StrCat("must name a core image source (mnist_digits, "
                     "fashion_mnist, idx, synthetic), got '",
                     images, "'"));
  }
  if (!sequence.has_tasks()) {
    return ConfigFieldError(Field("tasks"),
                            split ? "missing: the classes of '" + images +
                                        "' are known only once read; give "
                                        "the task count"
                                  : "missing: how many permuted tasks");
  }
  RETURN_IF_ERROR(CheckAtLeast(Field("tasks"), sequence.tasks(), 1));
  if (split) {
    RETURN_IF_ERROR(CheckAtLeast(Field("classes_per_task"),
                                 sequence.classes_per_task(), 2));
    const int64_t classes = KnownClasses(config, images);
    if (classes > 0 &&
        int64_t(sequence.tasks()) * sequence.classes_per_task() > classes) {
      return ConfigFieldError(
          Field("tasks"),
          absl::StrCat(sequence.tasks(), " tasks of ",
                       sequence.classes_per_task(), " classes need ",
                       int64_t(sequence.tasks()) * sequence.classes_per_task(),
                       " classes; '", images, "' has ", classes));
    }
  }
  RETURN_IF_ERROR(
      CheckAtLeast(Field("epochs_per_task"), sequence.epochs_per_task(), 1));
  RETURN_IF_ERROR(CheckOneOf(Field("schedule"), sequence.schedule(),
                             {kSequential, kJoint}, "schedule"));
  if (config.run_config().epochs() != sequence.tasks()) {
    return ConfigFieldError(
        "run_config.epochs",
        absl::StrCat("a continual run trains one task per epoch: set it to ",
                     "the task count, ", sequence.tasks(), " (got ",
                     config.run_config().epochs(), ")"));
  }
  return sequence;
}

absl::StatusOr<DataSplits> MakeTaskSequence(const DataSourceContext& context) {
  const RunConfig& config = *context.config;
  absl::StatusOr<TaskSequenceConfig> parsed = ParseTaskSequenceConfig(config);
  if (!parsed.ok()) return WithContext(parsed.status(), context.config_source);
  const TaskSequenceConfig& sequence = *parsed;
  const bool split = config.data_config().dataset() == kSplitSource;
  DataConfig base_config = config.data_config();
  base_config.set_dataset(sequence.images());
  base_config.clear_source_config();
  ASSIGN_OR_RETURN(DataSplits base, LoadDataSplits(base_config, config.seed()));
  const int64_t tasks = sequence.tasks();
  const int64_t classes = base.spec.num_classes;
  if (split && tasks * sequence.classes_per_task() > classes) {
    return ConfigFieldError(
        Field("tasks"),
        absl::StrCat(tasks, " tasks of ", sequence.classes_per_task(),
                     " classes need ", tasks * sequence.classes_per_task(),
                     " classes; '", sequence.images(), "' has ", classes));
  }
  DataSplits splits;
  RETURN_IF_ERROR(CallTorch("building the task sequence", [&] {
    std::vector<at::Tensor> permutations;
    if (!split) {
      int64_t pixels = 1;
      for (int64_t d : base.spec.input_shape) pixels *= d;
      for (int64_t t = 0; t < tasks; ++t) {
        at::Generator gen =
            GeneratorOf({config.seed(), kPermutationStream, uint64_t(t)});
        permutations.push_back(t == 0 ? at::arange(pixels, at::kLong)
                                      : at::randperm(pixels, gen));
      }
    }
    const TaskView view(permutations);
    DataSpec spec = base.spec;
    spec.num_classes = split ? sequence.classes_per_task() : classes;
    const int64_t per_task = split ? sequence.classes_per_task() : 0;
    TaskSamples train = SamplesOf(base.train, split, tasks, per_task);
    int64_t largest = 0;
    for (const at::Tensor& rows : train.indices) {
      largest = std::max(largest, rows.size(0));
    }
    const int64_t batch = config.run_config().batch_size();
    const int64_t steps_per_task =
        sequence.epochs_per_task() * ((largest + batch - 1) / batch);
    splits.val =
        Concatenate(SamplesOf(base.val, split, tasks, per_task), view, spec);
    splits.test =
        Concatenate(SamplesOf(base.test, split, tasks, per_task), view, spec);
    splits.train.spec = spec;
    splits.train.generated_size = steps_per_task * batch;
    splits.train.generator = std::make_shared<TaskStream>(
        std::move(train), view, steps_per_task, sequence.schedule() == kJoint,
        config.seed());
    splits.spec = spec;
  }));
  for (int64_t t = 0; t < tasks; ++t) {
    const at::Tensor& task = splits.test.extras[kTaskExtra];
    if ((task == t).sum().item<int64_t>() == 0) {
      return ConfigFieldError(
          Field("tasks"),
          absl::StrCat("task ", t + 1, " has no test samples in '",
                       sequence.images(), "'"));
    }
  }
  return splits;
}

}  // namespace ouroboros::hypernetwork
