#include "plugins/hypernetwork/continual.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/autograd.h>
#include <torch/nn/module.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/optimizer.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <optional>
#include <stdexcept>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "glog/logging.h"
#include "ouroboros/base/errors.h"
#include "ouroboros/base/files.h"
#include "ouroboros/base/json.h"
#include "ouroboros/base/status_macros.h"
#include "ouroboros/config/config.h"
#include "ouroboros/config/config_checks.h"
#include "ouroboros/runs/run_layout.h"
#include "plugins/hypernetwork/task_sequences.h"

namespace ouroboros::hypernetwork {
namespace {

constexpr char kHnet[] = "hnet";
constexpr char kFinetune[] = "finetune";
constexpr char kEwc[] = "ewc";
constexpr char kMlp[] = "mlp";
constexpr char kMnistConv[] = "mnist_conv";
constexpr char kPerTask[] = "per_task";
// Samples evaluated at a time.
constexpr int64_t kEvalChunk = 1000;
// Seeds the choice of the earlier tasks regularised at a step.
constexpr uint64_t kRegularizerStream = 0x7265676c;  // "regl"

int64_t Product(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

double Mean(const std::vector<double>& values, int64_t count) {
  double sum = 0;
  for (int64_t i = 0; i < count; ++i) sum += values[i];
  return count > 0 ? sum / count : std::nan("");
}

}  // namespace

// ---------------------------------------------------------------------------
// MainNetwork

void MainNetwork::Add(const std::string& name, std::vector<int64_t> shape,
                      int64_t fan_in) {
  WeightSlot slot;
  slot.name = name;
  slot.size = Product(shape);
  slot.shape = std::move(shape);
  slot.offset = num_weights_;
  slot.fan_in = fan_in;
  num_weights_ += slot.size;
  slots_.push_back(std::move(slot));
}

absl::StatusOr<MainNetwork> MainNetwork::Make(const ContinualConfig& config,
                                              const DataSpec& data,
                                              int64_t outputs) {
  MainNetwork net;
  net.input_shape_ = data.input_shape;
  if (config.main_network() == kMnistConv) {
    if (data.input_shape.size() != 3 || data.input_shape[1] < 4 ||
        data.input_shape[2] < 4) {
      return ConfigFieldError(
          "model_config.main_network",
          "mnist_conv needs images (channels x height x width, at least "
          "4 x 4); this data gives flat inputs");
    }
    net.conv_ = true;
    const int64_t in = data.input_shape[0];
    const int64_t c = config.main_conv_channels();
    const int64_t f = config.main_kernel_size();
    net.padding_ = f / 2;
    net.Add("conv1.weight", {c, in, f, f}, in * f * f);
    net.Add("conv1.bias", {c}, in * f * f);
    net.Add("conv2.weight", {c, c, f, f}, c * f * f);
    net.Add("conv2.bias", {c}, c * f * f);
    const int64_t features =
        c * (data.input_shape[1] / 4) * (data.input_shape[2] / 4);
    net.Add("head.weight", {outputs, features}, features);
    net.Add("head.bias", {outputs}, features);
    return net;
  }
  int64_t in = Product(data.input_shape);
  int layer = 0;
  for (int32_t width : config.main_hidden_sizes()) {
    net.Add(absl::StrCat("layer", layer, ".weight"), {width, in}, in);
    net.Add(absl::StrCat("layer", layer, ".bias"), {width}, in);
    in = width;
    ++layer;
  }
  net.Add("head.weight", {outputs, in}, in);
  net.Add("head.bias", {outputs}, in);
  return net;
}

at::Tensor MainNetwork::InitScale() const {
  at::Tensor scale = at::empty({num_weights_}, at::kFloat);
  for (const WeightSlot& slot : slots_) {
    scale.narrow(0, slot.offset, slot.size)
        .fill_(1.0 / std::sqrt(double(slot.fan_in)));
  }
  return scale;
}

at::Tensor MainNetwork::Initialize(at::Generator& generator) const {
  at::Tensor weights = at::empty({num_weights_}, at::kFloat);
  for (const WeightSlot& slot : slots_) {
    const double bound = 1.0 / std::sqrt(double(slot.fan_in));
    weights.narrow(0, slot.offset, slot.size)
        .uniform_(-bound, bound, generator);
  }
  return weights;
}

at::Tensor MainNetwork::Forward(const at::Tensor& inputs,
                                const at::Tensor& weights) const {
  std::vector<at::Tensor> w;
  w.reserve(slots_.size());
  for (const WeightSlot& slot : slots_) {
    w.push_back(weights.narrow(0, slot.offset, slot.size).view(slot.shape));
  }
  if (conv_) {
    at::Tensor h =
        inputs.view({-1, input_shape_[0], input_shape_[1], input_shape_[2]});
    h = at::max_pool2d(at::relu(at::conv2d(h, w[0], w[1], 1, padding_)),
                       {2, 2});
    h = at::max_pool2d(at::relu(at::conv2d(h, w[2], w[3], 1, padding_)),
                       {2, 2});
    return at::linear(h.flatten(1), w[4], w[5]);
  }
  at::Tensor h = inputs.flatten(1);
  const size_t layers = w.size() / 2;
  for (size_t i = 0; i + 1 < layers; ++i) {
    h = at::relu(at::linear(h, w[2 * i], w[2 * i + 1]));
  }
  return at::linear(h, w[2 * layers - 2], w[2 * layers - 1]);
}

// ---------------------------------------------------------------------------
// TaskHypernetwork

TaskHypernetwork::TaskHypernetwork(const ContinualConfig& config,
                                   int64_t num_outputs,
                                   torch::nn::Module& owner)
    : num_outputs_(num_outputs), chunk_size_(config.chunk_size()) {
  std::vector<int64_t> widths = {
      config.task_embedding_dim() +
      (chunked() ? config.chunk_embedding_dim() : 0)};
  for (int32_t width : config.hnet_hidden_sizes()) widths.push_back(width);
  widths.push_back(chunked() ? chunk_size_ : num_outputs_);
  for (size_t i = 0; i + 1 < widths.size(); ++i) {
    // LibTorch's Linear init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    const double bound = 1.0 / std::sqrt(double(widths[i]));
    weights_.push_back(owner.register_parameter(
        absl::StrCat("hnet_layer", i, "_weight"),
        at::empty({widths[i + 1], widths[i]}).uniform_(-bound, bound)));
    biases_.push_back(owner.register_parameter(
        absl::StrCat("hnet_layer", i, "_bias"),
        at::empty({widths[i + 1]}).uniform_(-bound, bound)));
  }
  if (chunked()) {
    chunk_embeddings_ = owner.register_parameter(
        "hnet_chunk_embeddings",
        at::randn({num_outputs_ / chunk_size_, config.chunk_embedding_dim()}));
  }
}

at::Tensor TaskHypernetwork::Generate(const at::Tensor& embeddings) const {
  const size_t layers = weights_.size();
  at::Tensor h;
  if (!chunked()) {
    h = embeddings;
    for (size_t i = 0; i < layers; ++i) {
      h = at::linear(h, weights_[i], biases_[i]);
      if (i + 1 < layers) h = at::relu(h);
    }
    return h;
  }
  // The first layer on [e, c] is W_e e + W_c c + b: one product per task
  // row and one per chunk, broadcast, instead of one per (task, chunk).
  const int64_t rows = embeddings.size(0);
  const int64_t chunks = chunk_embeddings_.size(0);
  const int64_t task_dim = embeddings.size(1);
  const at::Tensor& first = weights_[0];
  at::Tensor from_task =
      at::matmul(embeddings, first.narrow(1, 0, task_dim).t());
  at::Tensor from_chunk = at::linear(
      chunk_embeddings_, first.narrow(1, task_dim, first.size(1) - task_dim),
      biases_[0]);
  h = (from_task.unsqueeze(1) + from_chunk.unsqueeze(0))
          .view({rows * chunks, -1});
  for (size_t i = 1; i < layers; ++i) {
    h = at::linear(at::relu(h), weights_[i], biases_[i]);
  }
  return h.view({rows, chunks * chunk_size_});
}

at::Tensor OutputRegularizer(const at::Tensor& generated,
                             const at::Tensor& targets, double beta) {
  return (generated - targets).pow(2).sum() * (beta / generated.size(0));
}

at::Tensor InferTaskByEntropy(const at::Tensor& logits) {
  at::Tensor log_p = at::log_softmax(logits, -1);
  at::Tensor entropy = -(log_p.exp() * log_p).sum(-1);  // tasks x B
  return entropy.argmin(0);
}

// ---------------------------------------------------------------------------
// Config

namespace {

// The main network's weight count for the config's data, when the data's
// shape is known from the config alone (the core's image sources).
std::optional<int64_t> KnownMainWeights(const ContinualConfig& continual,
                                        const RunConfig& config,
                                        const TaskSequenceConfig& sequence) {
  DataSpec spec;
  const std::string& images = sequence.images();
  int64_t classes = 0;
  if (images == "mnist_digits" || images == "fashion_mnist") {
    spec.input_shape = {1, 28, 28};
    classes = 10;
  } else if (images == "synthetic") {
    spec.input_shape = {config.data_config().synthetic().num_features()};
    classes = config.data_config().synthetic().num_classes();
  } else {
    return std::nullopt;
  }
  const bool split = config.data_config().dataset() == kSplitSource;
  spec.num_classes = split ? sequence.classes_per_task() : classes;
  absl::StatusOr<MainNetwork> net =
      MainNetwork::Make(continual, spec, spec.num_classes);
  if (!net.ok()) return std::nullopt;
  return net->num_weights();
}

// "must divide the main network's N weights (e.g. a, b, c)".
absl::Status CheckChunkDivides(int64_t chunk, int64_t weights) {
  if (weights % chunk == 0) return absl::OkStatus();
  std::vector<int64_t> near;
  for (int64_t d = 1; d <= weights && near.size() < 64; ++d) {
    if (weights % d == 0) near.push_back(d);
  }
  std::sort(near.begin(), near.end(), [chunk](int64_t a, int64_t b) {
    return std::llabs(a - chunk) < std::llabs(b - chunk);
  });
  near.resize(std::min<size_t>(near.size(), 4));
  std::sort(near.begin(), near.end());
  return ConfigFieldError(
      "model_config.chunk_size",
      absl::StrCat("must divide the main network's ", weights,
                   " weights, so that every chunk is whole (got ", chunk,
                   "; divisors near it: ", absl::StrJoin(near, ", "), ")"));
}

}  // namespace

absl::StatusOr<ContinualConfig> ParseContinualConfig(const RunConfig& config) {
  ASSIGN_OR_RETURN(
      ContinualConfig continual,
      ParseSection<ContinualConfig>(config.model_config(), "model_config"));
  const std::string& method = continual.method();
  RETURN_IF_ERROR(CheckOneOf("model_config.method", method,
                             {kHnet, kFinetune, kEwc}, "method"));
  RETURN_IF_ERROR(CheckOneOf("model_config.main_network",
                             continual.main_network(), {kMlp, kMnistConv},
                             "main network"));
  RETURN_IF_ERROR(CheckOneOf("model_config.heads", continual.heads(),
                             {"shared", kPerTask}, "heads"));
  std::vector<std::pair<std::string, int64_t>> sizes = {
      {"main_conv_channels", continual.main_conv_channels()},
      {"main_kernel_size", continual.main_kernel_size()},
      {"task_embedding_dim", continual.task_embedding_dim()},
      {"chunk_embedding_dim", continual.chunk_embedding_dim()},
      {"fisher_samples", continual.fisher_samples()}};
  for (int i = 0; i < continual.main_hidden_sizes_size(); ++i) {
    sizes.push_back({absl::StrCat("main_hidden_sizes[", i, "]"),
                     continual.main_hidden_sizes(i)});
  }
  for (int i = 0; i < continual.hnet_hidden_sizes_size(); ++i) {
    sizes.push_back({absl::StrCat("hnet_hidden_sizes[", i, "]"),
                     continual.hnet_hidden_sizes(i)});
  }
  for (const auto& [field, value] : sizes) {
    RETURN_IF_ERROR(
        CheckAtLeast(absl::StrCat("model_config.", field), value, int64_t{1}));
  }
  if (continual.main_kernel_size() % 2 == 0) {
    return ConfigFieldError(
        "model_config.main_kernel_size",
        absl::StrCat("must be odd, so that padding keeps the image size (got ",
                     continual.main_kernel_size(), ")"));
  }
  for (const auto& [field, value] :
       {std::pair<const char*, int64_t>{"chunk_size", continual.chunk_size()},
        {"regularized_tasks_per_step",
         continual.regularized_tasks_per_step()}}) {
    RETURN_IF_ERROR(
        CheckAtLeast(absl::StrCat("model_config.", field), value, int64_t{0}));
  }
  for (const auto& [field, value] :
       {std::pair<const char*, double>{"beta", continual.beta()},
        {"ewc_lambda", continual.ewc_lambda()}}) {
    RETURN_IF_ERROR(
        CheckFiniteAtLeast(absl::StrCat("model_config.", field), value, 0));
  }
  RETURN_IF_ERROR(CheckInRange("model_config.ewc_gamma", continual.ewc_gamma(),
                               0.0, 1.0, Interval::kOpenClosed));
  if (!IsTaskSequence(config)) {
    return ConfigFieldError(
        "data_config.dataset",
        absl::StrCat("model continual learns a task sequence: set \"",
                     kPermutedSource, "\" or \"", kSplitSource, "\" (got '",
                     config.data_config().dataset(), "')"));
  }
  ASSIGN_OR_RETURN(TaskSequenceConfig sequence,
                   ParseTaskSequenceConfig(config));
  if (method == kHnet && sequence.schedule() == "joint") {
    return ConfigFieldError(
        "model_config.method",
        "a joint (multitask) run trains the main network itself: method "
        "finetune with data_config.source_config.schedule joint");
  }
  if (method == kHnet && continual.chunk_size() > 0) {
    if (std::optional<int64_t> weights =
            KnownMainWeights(continual, config, sequence)) {
      RETURN_IF_ERROR(CheckChunkDivides(continual.chunk_size(), *weights));
    }
  }
  return continual;
}

// ---------------------------------------------------------------------------
// The model

namespace {

using Clock = std::chrono::steady_clock;

class ContinualModel : public Model {
 public:
  ContinualModel(ContinualConfig config, TaskSequenceConfig sequence,
                 bool split, MainNetwork main, int64_t classes, uint64_t seed)
      : config_(std::move(config)),
        sequence_(std::move(sequence)),
        split_(split),
        main_(std::move(main)),
        tasks_(sequence_.tasks()),
        classes_(classes),
        seed_(seed),
        hnet_method_(config_.method() == kHnet),
        per_task_heads_(!hnet_method_ && config_.heads() == kPerTask),
        joint_(sequence_.schedule() == "joint"),
        seconds_per_task_(tasks_, std::nan("")) {
    if (hnet_method_) {
      for (int64_t t = 0; t < tasks_; ++t) {
        embeddings_.push_back(module_.register_parameter(
            absl::StrCat("task_embedding_", t),
            at::randn({config_.task_embedding_dim()})));
      }
      hnet_ = std::make_unique<TaskHypernetwork>(config_, main_.num_weights(),
                                                 module_);
      scale_ = module_.register_buffer("main_weight_scale", main_.InitScale());
    } else {
      at::Generator generator = at::detail::getDefaultCPUGenerator();
      theta_ = module_.register_parameter("main_weights",
                                          main_.Initialize(generator));
    }
  }

  torch::nn::Module& module() override { return module_; }

  // The logits of the last task begun (the task each sample is of is not
  // known here; the training module passes it).
  at::Tensor Forward(const at::Tensor& inputs) override {
    return Logits(inputs, std::min(tasks_finished_, tasks_ - 1));
  }

  absl::StatusOr<double> TrainStep(const Batch& batch,
                                   TrainingContext& training) override {
    if (training.world_size() > 1) {
      return absl::FailedPreconditionError(
          "model continual trains in one process: run it without --nproc or "
          "WORLD_SIZE");
    }
    auto found = batch.extras.find(kTaskExtra);
    if (found == batch.extras.end()) {
      return absl::FailedPreconditionError(
          "model continual needs each batch's task (extras[\"task\"]): use "
          "the data sources permuted or split");
    }
    const at::Tensor& tasks = found->second;
    double loss_value = 0;
    RETURN_IF_ERROR(CallTorch("a continual training step", [&] {
      const int64_t task = tasks[0].item<int64_t>();
      // The clock of each epoch (a task, or a joint run's share of steps).
      const int64_t epoch = training.step() / StepsPerTask(training);
      if (epoch != timed_epoch_) {
        timed_epoch_ = epoch;
        epoch_start_ = Clock::now();
      }
      torch::optim::Optimizer& optimizer = training.optimizer();
      optimizer.zero_grad();
      at::Tensor loss;
      if (hnet_method_) {
        loss = HnetLoss(batch, task, training.step());
      } else {
        at::Tensor logits = joint_ ? LogitsPerSample(batch.inputs, tasks)
                                   : Logits(batch.inputs, task);
        loss = at::nll_loss(at::log_softmax(logits, 1), batch.targets);
        if (config_.method() == kEwc && fisher_.defined()) {
          loss = loss + (config_.ewc_lambda() / 2) *
                            (fisher_ * (theta_ - anchor_).pow(2)).sum();
        }
      }
      loss.backward();
      loss_value = loss.item<double>();
    }));
    RETURN_IF_ERROR(training.SynchronizeGradients());
    RETURN_IF_ERROR(CallTorch("the optimizer step", [&] {
      const double clip = training.config().optim_config().grad_clip_norm();
      if (clip > 0) {
        torch::nn::utils::clip_grad_norm_(module_.parameters(), clip);
      }
      training.optimizer().step();
    }));
    return loss_value;
  }

  absl::StatusOr<std::map<std::string, double>> Evaluate(
      Split split, const Dataset& data, TrainingContext& training) override {
    const int64_t seen = SeenTasks(training);
    std::map<std::string, double> metrics;
    RETURN_IF_ERROR(CallTorch("evaluating the tasks", [&] {
      double loss = 0;
      const std::vector<double> accuracy = PerTaskAccuracy(data, seen, &loss);
      metrics["accuracy"] = Mean(accuracy, seen);
      metrics["loss"] = loss;
      if (split == Split::kTest) {
        last_cl3_ = TaskInferredAccuracy(data, seen);
        metrics["cl3_accuracy"] = last_cl3_;
      }
    }));
    return metrics;
  }

  absl::Status OnEpochEnd(int64_t epoch, TrainingContext& training,
                          std::map<std::string, double>* metrics) override {
    return CallTorch("ending a task", [&] {
      if (timed_epoch_ == epoch) {
        seconds_per_task_[epoch] =
            std::chrono::duration<double>(Clock::now() - epoch_start_).count();
      }
      if (!joint_) FinishTask(epoch, training);
      tasks_finished_ = joint_ ? tasks_ : epoch + 1;
      double unused = 0;
      const std::vector<double> val =
          PerTaskAccuracy(training.data().val, tasks_finished_, &unused);
      const std::vector<double> test =
          PerTaskAccuracy(training.data().test, tasks_finished_, &unused);
      val_rows_.push_back(val);
      test_rows_.push_back(test);
      (*metrics)["mean_accuracy"] = Mean(val, tasks_finished_);
      (*metrics)["mean_test_accuracy"] = Mean(test, tasks_finished_);
      for (int64_t t = 0; t < tasks_finished_; ++t) {
        (*metrics)[absl::StrCat("task_", t + 1)] = val[t];
      }
    });
  }

  absl::Status OnRunEnd(TrainingContext& training) override {
    if (!training.writes_outputs()) return absl::OkStatus();
    return WriteFileAtomically(
        RunFile(training.run_dir(), kContinualReportFile),
        FormatJson(Report(training)));
  }

  // The final mean test accuracy over the tasks, as in continual.json.
  std::vector<std::string> SummaryLines() const override {
    std::vector<std::string> lines;
    if (test_rows_.empty()) return lines;
    const double final_mean = Mean(test_rows_.back(), tasks_);
    std::string forgetting;
    if (std::optional<std::vector<double>> after = AccuracyAfterLearning()) {
      const double mean_after = Mean(*after, tasks_);
      forgetting = absl::StrFormat(
          "; right after learning each %.2f%%, forgetting %.2f points",
          100 * mean_after, 100 * (mean_after - final_mean));
    }
    lines.push_back(absl::StrFormat(
        "continual (%s): mean test accuracy over the %d tasks at the end "
        "%.2f%%%s",
        joint_ ? "joint" : config_.method(), tasks_, 100 * final_mean,
        forgetting));
    if (std::isfinite(last_cl3_)) {
      lines.push_back(absl::StrFormat(
          "task inferred (CL3): %.2f%% test accuracy", 100 * last_cl3_));
    }
    return lines;
  }

  std::vector<FigureSpec> Figures() const override {
    FigureSpec mean;
    mean.name = "continual_accuracy";
    mean.title =
        "after each task: mean accuracy over the tasks seen so far "
        "(validation, test)";
    mean.series = {"model/mean_accuracy", "model/mean_test_accuracy"};
    FigureSpec matrix;
    matrix.name = "continual_matrix";
    matrix.title = "validation accuracy on each task after each task";
    matrix.heatmap = true;
    for (int64_t t = 0; t < tasks_; ++t) {
      matrix.series.push_back(absl::StrCat("model/task_", t + 1));
    }
    return {mean, matrix};
  }

  absl::Status SaveState(ComponentState* state) const override {
    state->SetInt("tasks_finished", tasks_finished_);
    state->SetTensor("val_rows", Rows(val_rows_));
    state->SetTensor("test_rows", Rows(test_rows_));
    state->SetTensor("seconds_per_task",
                     at::tensor(seconds_per_task_, at::kDouble));
    if (targets_.defined()) state->SetTensor("targets", targets_);
    if (fisher_.defined()) {
      state->SetTensor("fisher", fisher_);
      state->SetTensor("anchor", anchor_);
    }
    return absl::OkStatus();
  }

  absl::Status LoadState(const ComponentState& state) override {
    ASSIGN_OR_RETURN(tasks_finished_, state.GetInt("tasks_finished"));
    ASSIGN_OR_RETURN(at::Tensor val, state.GetTensor("val_rows"));
    ASSIGN_OR_RETURN(at::Tensor test, state.GetTensor("test_rows"));
    ASSIGN_OR_RETURN(at::Tensor seconds, state.GetTensor("seconds_per_task"));
    val_rows_ = FromRows(val);
    test_rows_ = FromRows(test);
    for (int64_t t = 0; t < tasks_ && t < seconds.size(0); ++t) {
      seconds_per_task_[t] = seconds[t].item<double>();
    }
    if (state.Has("targets")) {
      ASSIGN_OR_RETURN(targets_, state.GetTensor("targets"));
    }
    if (state.Has("fisher")) {
      ASSIGN_OR_RETURN(fisher_, state.GetTensor("fisher"));
      ASSIGN_OR_RETURN(anchor_, state.GetTensor("anchor"));
    }
    if (hnet_method_ && !joint_) {
      for (int64_t t = 0; t < tasks_finished_ && t < tasks_; ++t) {
        Freeze(embeddings_[t]);
      }
    }
    return absl::OkStatus();
  }

 private:
  // The flat main-network weights of `task`: generated, or the own ones.
  at::Tensor TaskWeights(int64_t task) const {
    if (!hnet_method_) return theta_;
    return scale_ * hnet_->Generate(embeddings_[task].unsqueeze(0))[0];
  }

  // Every sample of `inputs` as a sample of `task`.
  at::Tensor Logits(const at::Tensor& inputs, int64_t task) const {
    at::Tensor out = main_.Forward(inputs, TaskWeights(task));
    return per_task_heads_ ? out.narrow(1, task * classes_, classes_) : out;
  }

  // Each sample as a sample of its own task (joint batches; not hnet).
  at::Tensor LogitsPerSample(const at::Tensor& inputs,
                             const at::Tensor& tasks) const {
    at::Tensor out = main_.Forward(inputs, theta_);
    if (!per_task_heads_) return out;
    const int64_t batch = inputs.size(0);
    return out.view({batch, tasks_, classes_})
        .gather(1, tasks.view({batch, 1, 1}).expand({batch, 1, classes_}))
        .squeeze(1);
  }

  // The task's cross-entropy on weights the hypernetwork makes from e_task,
  // plus the output regulariser over earlier tasks, all rows of embeddings
  // in one call.
  at::Tensor HnetLoss(const Batch& batch, int64_t task, int64_t step) {
    std::vector<at::Tensor> rows = {embeddings_[task].unsqueeze(0)};
    std::vector<int64_t> earlier;
    for (int64_t t = 0; t < task; ++t) earlier.push_back(t);
    const int64_t keep = config_.regularized_tasks_per_step();
    if (keep > 0 && keep < static_cast<int64_t>(earlier.size())) {
      at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(
          seed_ ^ (kRegularizerStream * 0x9e3779b97f4a7c15ULL) ^
          (uint64_t(step) * 0xbf58476d1ce4e5b9ULL));
      at::Tensor pick = std::get<0>(
          at::randperm(int64_t(earlier.size()), gen).narrow(0, 0, keep).sort());
      std::vector<int64_t> chosen;
      for (int64_t i = 0; i < keep; ++i) {
        chosen.push_back(earlier[pick[i].item<int64_t>()]);
      }
      earlier = chosen;
    }
    for (int64_t t : earlier) {
      rows.push_back(embeddings_[t].detach().unsqueeze(0));
    }
    at::Tensor generated = hnet_->Generate(at::cat(rows));
    at::Tensor logits = main_.Forward(batch.inputs, scale_ * generated[0]);
    at::Tensor loss = at::nll_loss(at::log_softmax(logits, 1), batch.targets);
    if (!earlier.empty() && config_.beta() > 0) {
      at::Tensor index = at::tensor(earlier, at::kLong);
      loss = loss +
             OutputRegularizer(generated.narrow(0, 1, int64_t(earlier.size())),
                               targets_.index_select(0, index), config_.beta());
    }
    return loss;
  }

  // Task `task` is learned: its embedding stays as it is; the outputs for
  // every task so far become the regulariser's targets (h* of the next
  // task); ewc: the Fisher of this task joins the running one.
  void FinishTask(int64_t task, TrainingContext& training) {
    if (hnet_method_) {
      Freeze(embeddings_[task]);
      torch::NoGradGuard no_grad;
      std::vector<at::Tensor> rows;
      for (int64_t t = 0; t <= task; ++t) {
        rows.push_back(embeddings_[t].unsqueeze(0));
      }
      targets_ = hnet_->Generate(at::cat(rows)).detach().clone();
    }
    if (config_.method() == kEwc) AddFisher(task, training);
  }

  static void Freeze(at::Tensor& embedding) {
    // An undefined gradient: the optimizer skips it (a zero one would let
    // Adam's moments still move it).
    embedding.mutable_grad() = at::Tensor();
    embedding.set_requires_grad(false);
  }

  // Empirical Fisher of `task`: mean squared gradient of the log-likelihood
  // of fisher_samples of its training samples, one sample at a time.
  void AddFisher(int64_t task, TrainingContext& training) {
    absl::StatusOr<Batch> drawn = training.data().train.generator->Draw(
        config_.fisher_samples(), task * StepsPerTask(training), 0);
    if (!drawn.ok()) throw std::runtime_error(drawn.status().ToString());
    at::Tensor fisher = at::zeros_like(theta_);
    const int64_t n = drawn->inputs.size(0);
    for (int64_t i = 0; i < n; ++i) {
      at::Tensor logits = Logits(drawn->inputs.narrow(0, i, 1), task);
      at::Tensor log_likelihood = -at::nll_loss(at::log_softmax(logits, 1),
                                                drawn->targets.narrow(0, i, 1));
      at::Tensor grad = torch::autograd::grad({log_likelihood}, {theta_})[0];
      fisher.add_(grad.pow(2));
    }
    fisher.div_(n);
    fisher_ =
        fisher_.defined() ? fisher_ * config_.ewc_gamma() + fisher : fisher;
    anchor_ = theta_.detach().clone();
  }

  // Optimizer steps per task: the Trainer's steps per epoch.
  static int64_t StepsPerTask(TrainingContext& training) {
    const int64_t batch = training.config().run_config().batch_size();
    return std::max<int64_t>(1, training.data().train.generated_size / batch);
  }

  // The tasks trained so far at the training's step (one per epoch; all of
  // them in a joint run).
  int64_t SeenTasks(TrainingContext& training) const {
    if (joint_) return tasks_;
    const int64_t steps_per_task = StepsPerTask(training);
    const int64_t begun =
        (training.step() + steps_per_task - 1) / steps_per_task;
    return std::clamp<int64_t>(begun, 1, tasks_);
  }

  // Accuracy on each task < seen (NaN beyond), each task's samples under
  // its own weights; `loss`: the mean cross-entropy over those samples.
  std::vector<double> PerTaskAccuracy(const Dataset& data, int64_t seen,
                                      double* loss) const {
    torch::NoGradGuard no_grad;
    std::vector<double> accuracy(tasks_, std::nan(""));
    const at::Tensor& task_of = data.extras.at(kTaskExtra);
    double loss_sum = 0;
    int64_t count = 0;
    for (int64_t t = 0; t < seen; ++t) {
      at::Tensor rows = (task_of == t).nonzero().flatten();
      const int64_t n = rows.size(0);
      if (n == 0) continue;
      const at::Tensor weights = TaskWeights(t);
      int64_t correct = 0;
      for (int64_t begin = 0; begin < n; begin += kEvalChunk) {
        at::Tensor chunk =
            rows.narrow(0, begin, std::min(kEvalChunk, n - begin));
        at::Tensor out =
            main_.Forward(data.inputs.index_select(0, chunk), weights);
        if (per_task_heads_) out = out.narrow(1, t * classes_, classes_);
        at::Tensor targets = data.targets.index_select(0, chunk);
        correct += (out.argmax(1) == targets).sum().item<int64_t>();
        loss_sum += at::nll_loss(at::log_softmax(out, 1), targets, {},
                                 at::Reduction::Sum)
                        .item<double>();
      }
      accuracy[t] = double(correct) / n;
      count += n;
    }
    *loss = count > 0 ? loss_sum / count : std::nan("");
    return accuracy;
  }

  // CL3: the task of each sample (of tasks < seen) is not given: the task
  // whose network is most certain (lowest predictive entropy) classifies
  // it. Split labels are disjoint across tasks: right only with the right
  // task and class; permuted tasks share labels: the class decides.
  double TaskInferredAccuracy(const Dataset& data, int64_t seen) const {
    torch::NoGradGuard no_grad;
    const at::Tensor& task_of = data.extras.at(kTaskExtra);
    at::Tensor rows = (task_of < seen).nonzero().flatten();
    const int64_t n = rows.size(0);
    if (n == 0) return std::nan("");
    std::vector<at::Tensor> weights;
    for (int64_t t = 0; t < seen; ++t) weights.push_back(TaskWeights(t));
    int64_t correct = 0;
    for (int64_t begin = 0; begin < n; begin += kEvalChunk) {
      at::Tensor chunk = rows.narrow(0, begin, std::min(kEvalChunk, n - begin));
      at::Tensor inputs = data.inputs.index_select(0, chunk);
      std::vector<at::Tensor> logits;
      for (int64_t t = 0; t < seen; ++t) {
        at::Tensor out = main_.Forward(inputs, weights[t]);
        if (per_task_heads_) out = out.narrow(1, t * classes_, classes_);
        logits.push_back(out);
      }
      at::Tensor all = at::stack(logits);  // seen x B x classes
      at::Tensor chosen = InferTaskByEntropy(all);
      at::Tensor predicted =
          all.gather(0, chosen.view({1, -1, 1}).expand({1, -1, classes_}))
              .squeeze(0)
              .argmax(1);
      at::Tensor right = predicted == data.targets.index_select(0, chunk);
      if (split_)
        right = right.logical_and(chosen == task_of.index_select(0, chunk));
      correct += right.sum().item<int64_t>();
    }
    return double(correct) / n;
  }

  // rows x tasks, NaN where a task was not yet seen.
  at::Tensor Rows(const std::vector<std::vector<double>>& rows) const {
    at::Tensor out =
        at::full({int64_t(rows.size()), tasks_}, std::nan(""), at::kDouble);
    for (size_t i = 0; i < rows.size(); ++i) {
      for (int64_t t = 0; t < tasks_; ++t) out[i][t] = rows[i][t];
    }
    return out;
  }
  std::vector<std::vector<double>> FromRows(const at::Tensor& rows) const {
    std::vector<std::vector<double>> out;
    for (int64_t i = 0; i < rows.size(0); ++i) {
      std::vector<double> row(tasks_);
      for (int64_t t = 0; t < tasks_; ++t) row[t] = rows[i][t].item<double>();
      out.push_back(row);
    }
    return out;
  }

  // Each task's test accuracy right after it was learned (the matrix's
  // diagonal), once every task has been learned in turn; none for joint
  // training.
  std::optional<std::vector<double>> AccuracyAfterLearning() const {
    if (joint_ || static_cast<int64_t>(test_rows_.size()) != tasks_) {
      return std::nullopt;
    }
    std::vector<double> after;
    for (int64_t t = 0; t < tasks_; ++t) after.push_back(test_rows_[t][t]);
    return after;
  }

  google::protobuf::Value Report(TrainingContext& training) const {
    google::protobuf::Value root;
    auto& fields = *root.mutable_struct_value()->mutable_fields();
    fields["method"].set_string_value(joint_ ? "joint" : config_.method());
    fields["data"].set_string_value(training.config().data_config().dataset());
    fields["images"].set_string_value(sequence_.images());
    fields["tasks"].set_number_value(tasks_);
    const auto matrix = [this](const std::vector<std::vector<double>>& rows) {
      google::protobuf::Value value;
      auto* list = value.mutable_list_value();
      for (const auto& row : rows) {
        auto* cells = list->add_values()->mutable_list_value();
        for (double cell : row) {
          if (std::isfinite(cell)) {
            cells->add_values()->set_number_value(cell);
          } else {
            cells->add_values()->set_null_value({});
          }
        }
      }
      return value;
    };
    fields["accuracy"] = matrix(val_rows_);
    fields["test_accuracy"] = matrix(test_rows_);
    if (!test_rows_.empty()) {
      const std::vector<double>& last = test_rows_.back();
      const double final_mean = Mean(last, tasks_);
      fields["final_mean_accuracy"].set_number_value(final_mean);
      if (std::optional<std::vector<double>> after = AccuracyAfterLearning()) {
        auto* list = fields["accuracy_after_learning"].mutable_list_value();
        for (double accuracy : *after) {
          list->add_values()->set_number_value(accuracy);
        }
        const double mean_after = Mean(*after, tasks_);
        fields["mean_accuracy_after_learning"].set_number_value(mean_after);
        fields["forgetting"].set_number_value(mean_after - final_mean);
      }
    }
    if (std::isfinite(last_cl3_)) {
      fields["cl3_accuracy"].set_number_value(last_cl3_);
    }
    auto& parameters =
        *fields["parameters"].mutable_struct_value()->mutable_fields();
    parameters["main_network"].set_number_value(main_.num_weights());
    int64_t trainable = 0;
    for (const at::Tensor& p : module_.parameters()) trainable += p.numel();
    parameters["trainable"].set_number_value(trainable);
    const int64_t steps_per_task = StepsPerTask(training);
    fields["steps_per_task"].set_number_value(steps_per_task);
    // Clocks, not results (the resume checks skip "time").
    auto& time = *fields["time"].mutable_struct_value()->mutable_fields();
    auto* seconds = time["seconds_per_task"].mutable_list_value();
    auto* rate = time["steps_per_second"].mutable_list_value();
    for (double s : seconds_per_task_) {
      if (std::isfinite(s)) {
        seconds->add_values()->set_number_value(s);
        rate->add_values()->set_number_value(s > 0 ? steps_per_task / s : 0);
      } else {
        seconds->add_values()->set_null_value({});
        rate->add_values()->set_null_value({});
      }
    }
    return root;
  }

  ContinualConfig config_;
  TaskSequenceConfig sequence_;
  bool split_;
  MainNetwork main_;
  int64_t tasks_;
  int64_t classes_;
  uint64_t seed_;
  bool hnet_method_;
  bool per_task_heads_;
  bool joint_;
  torch::nn::Module module_;
  // hnet.
  std::vector<at::Tensor> embeddings_;  // e_t, one parameter each
  std::unique_ptr<TaskHypernetwork> hnet_;
  at::Tensor scale_;    // 1/sqrt(fan_in) per main-network weight
  at::Tensor targets_;  // tasks finished x weights: h*(e_t)
  // finetune, ewc.
  at::Tensor theta_;
  at::Tensor fisher_;  // ewc: the running diagonal Fisher
  at::Tensor anchor_;  // ewc: the weights after the last task
  // The evaluation after each task; the run's state (checkpointed).
  int64_t tasks_finished_ = 0;
  std::vector<std::vector<double>> val_rows_;
  std::vector<std::vector<double>> test_rows_;
  std::vector<double> seconds_per_task_;
  double last_cl3_ = std::nan("");
  int64_t timed_epoch_ = -1;
  Clock::time_point epoch_start_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Model>> MakeContinualModel(
    const ModelContext& context) {
  const RunConfig& config = *context.config;
  absl::StatusOr<ContinualConfig> continual = ParseContinualConfig(config);
  if (!continual.ok()) {
    return WithContext(continual.status(), context.config_source);
  }
  ASSIGN_OR_RETURN(TaskSequenceConfig sequence,
                   ParseTaskSequenceConfig(config));
  const bool split = config.data_config().dataset() == kSplitSource;
  const int64_t classes = context.data.num_classes;
  const bool per_task =
      continual->method() != kHnet && continual->heads() == kPerTask;
  const int64_t outputs = per_task ? classes * sequence.tasks() : classes;
  ASSIGN_OR_RETURN(MainNetwork main,
                   MainNetwork::Make(*continual, context.data, outputs));
  if (continual->method() == kHnet && continual->chunk_size() > 0) {
    RETURN_IF_ERROR(
        CheckChunkDivides(continual->chunk_size(), main.num_weights()));
  }
  std::unique_ptr<Model> model;
  RETURN_IF_ERROR(CallTorch("building the continual model", [&] {
    model = std::make_unique<ContinualModel>(
        *continual, sequence, split, std::move(main), classes, config.seed());
  }));
  int64_t trainable = 0;
  for (const at::Tensor& p : model->module().parameters()) {
    trainable += p.numel();
  }
  LOG(INFO)
      << "continual: " << continual->method() << " on " << sequence.tasks()
      << " " << config.data_config().dataset() << " tasks of "
      << sequence.images() << "; main network "
      << MainNetwork::Make(*continual, context.data, outputs)->num_weights()
      << " weights, " << trainable << " trainable parameters";
  return model;
}

}  // namespace ouroboros::hypernetwork
