#include "plugins/introspective/introspection_net.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>
#include <torch/serialize.h>
#include <torch/utils.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "ouroboros/api/plugin_api.h"
#include "ouroboros/base/errors.h"
#include "ouroboros/base/status_macros.h"
#include "ouroboros/config/config.h"
#include "ouroboros/config/config_checks.h"
#include "plugins/introspective/default_config.h"

namespace ouroboros::introspective {
namespace {

constexpr char kDemoPipeline[] = "introspective_demo";
// Weights per block of the prediction kernel: 4 input columns and the
// output of one block stay in L1.
constexpr int64_t kBlock = 256;

// out[i] = b2 + sum_j w2[j] relu(b1[j] + sum_k w1[j][k] x_k[i]) for the
// kN weights of one block; the inner loops over i vectorise.
template <int64_t kN>
void PredictBlock(const float* const x[4], int64_t hidden, const float* w1,
                  const float* b1, const float* w2, float b2, float* out) {
  float acc[kN];
  for (int64_t i = 0; i < kN; ++i) acc[i] = b2;
  for (int64_t j = 0; j < hidden; ++j) {
    const float a0 = w1[4 * j], a1 = w1[4 * j + 1], a2 = w1[4 * j + 2],
                a3 = w1[4 * j + 3], bias = b1[j], v = w2[j];
    for (int64_t i = 0; i < kN; ++i) {
      const float h =
          bias + a0 * x[0][i] + a1 * x[1][i] + a2 * x[2][i] + a3 * x[3][i];
      acc[i] += v * (h > 0.0f ? h : 0.0f);
    }
  }
  for (int64_t i = 0; i < kN; ++i) out[i] = acc[i];
}

double MeanAbs(const at::Tensor& t) { return t.abs().mean().item<double>(); }

}  // namespace

IntrospectionNet::IntrospectionNet(int64_t hidden_size, int64_t inputs)
    : hidden_size_(hidden_size),
      inputs_(inputs),
      module_(std::make_shared<torch::nn::Module>("IntrospectionNet")) {
  // LibTorch's Linear init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
  const double bound1 = 1.0 / std::sqrt(static_cast<double>(inputs));
  const double bound2 = 1.0 / std::sqrt(static_cast<double>(hidden_size));
  auto fc1 =
      module_->register_module("fc1", std::make_shared<torch::nn::Module>());
  auto fc2 =
      module_->register_module("fc2", std::make_shared<torch::nn::Module>());
  w1_ = fc1->register_parameter(
      "weight", at::empty({hidden_size, inputs}).uniform_(-bound1, bound1));
  b1_ = fc1->register_parameter(
      "bias", at::empty({hidden_size}).uniform_(-bound1, bound1));
  w2_ = fc2->register_parameter(
      "weight", at::empty({1, hidden_size}).uniform_(-bound2, bound2));
  b2_ =
      fc2->register_parameter("bias", at::empty({1}).uniform_(-bound2, bound2));
}

IntrospectionNet::~IntrospectionNet() = default;

at::Tensor IntrospectionNet::Forward(const at::Tensor& inputs) const {
  at::Tensor hidden = at::relu(at::addmm(b1_, inputs, w1_.t()));
  return at::addmm(b2_, hidden, w2_.t()).reshape({-1});
}

at::Tensor IntrospectionNet::Predict(const at::Tensor& inputs) const {
  torch::NoGradGuard no_grad;
  TORCH_CHECK(inputs.dim() == 2 && inputs.size(1) == inputs_,
              "the introspection network reads N x ", inputs_,
              " histories, got ", inputs.sizes());
  // The hand-vectorised kernel is for the 4 history inputs; with Adam's
  // direction, LibTorch's two products.
  if (inputs_ != kHistoryInputs) return Forward(inputs.to(at::kFloat));
  // Column-major inputs (ComputeFeatures makes them so) are read in place.
  const at::Tensor columns = inputs.to(at::kFloat).t().contiguous();
  const int64_t n = inputs.size(0);
  at::Tensor out = at::empty({n}, at::kFloat);
  const at::Tensor w1 = w1_.detach().contiguous();
  const at::Tensor b1 = b1_.detach().contiguous();
  const at::Tensor w2 = w2_.detach().contiguous();
  const float b2 = b2_.item<float>();
  const float* base = columns.data_ptr<float>();
  float* result = out.data_ptr<float>();
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  at::parallel_for(0, blocks, 16, [&](int64_t first, int64_t last) {
    for (int64_t block = first; block < last; ++block) {
      const int64_t start = block * kBlock;
      const float* x[4] = {base + start, base + n + start, base + 2 * n + start,
                           base + 3 * n + start};
      if (start + kBlock <= n) {
        PredictBlock<kBlock>(x, hidden_size_, w1.data_ptr<float>(),
                             b1.data_ptr<float>(), w2.data_ptr<float>(), b2,
                             result + start);
        continue;
      }
      // The last, partial block: padded with zeros.
      float padded[4][kBlock] = {};
      const int64_t count = n - start;
      for (int k = 0; k < 4; ++k) std::copy(x[k], x[k] + count, padded[k]);
      const float* px[4] = {padded[0], padded[1], padded[2], padded[3]};
      float tail[kBlock];
      PredictBlock<kBlock>(px, hidden_size_, w1.data_ptr<float>(),
                           b1.data_ptr<float>(), w2.data_ptr<float>(), b2,
                           tail);
      std::copy(tail, tail + count, result + start);
    }
  });
  return out;
}

absl::Status IntrospectionNet::Save(const std::string& path) const {
  c10::Dict<std::string, at::Tensor> dict;
  for (const auto& item : module_->named_parameters()) {
    dict.insert(item.key(), item.value().detach());
  }
  return SavePickled(c10::IValue(dict), path);
}

absl::StatusOr<std::unique_ptr<IntrospectionNet>> IntrospectionNet::Load(
    const std::string& path) {
  absl::StatusOr<std::vector<char>> bytes = ReadFileBytes(path);
  if (!bytes.ok()) {
    return absl::NotFoundError(
        absl::StrCat(path,
                     ": cannot read the introspection network (train one with "
                     "--model=introspective; it writes introspection_net.pt)"));
  }
  std::unique_ptr<IntrospectionNet> net;
  absl::Status status = CallTorch("reading " + path, [&] {
    std::map<std::string, at::Tensor> saved;
    for (const auto& entry : torch::pickle_load(*bytes).toGenericDict()) {
      saved[entry.key().toStringRef()] = entry.value().toTensor();
    }
    TORCH_CHECK(
        saved.count("fc1.weight") == 1 && saved["fc1.weight"].dim() == 2,
        "no fc1.weight matrix");
    const int64_t inputs = saved["fc1.weight"].size(1);
    TORCH_CHECK(inputs == 4 || inputs == 5, "fc1.weight reads ", inputs,
                " inputs, not 4 or 5");
    net =
        std::make_unique<IntrospectionNet>(saved["fc1.weight"].size(0), inputs);
    torch::NoGradGuard no_grad;
    for (auto& item : net->module().named_parameters()) {
      auto it = saved.find(item.key());
      TORCH_CHECK(it != saved.end(), "no ", item.key());
      TORCH_CHECK(it->second.sizes() == item.value().sizes(), item.key(),
                  " has shape ", it->second.sizes(), ", expected ",
                  item.value().sizes());
      TORCH_CHECK(at::isfinite(it->second).all().item<bool>(), item.key(),
                  " is not finite");
      item.value().copy_(it->second);
    }
  });
  if (!status.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": not an introspection network: ", status.message()));
  }
  return net;
}

at::Tensor PredictWeights(const IntrospectionNet& net,
                          const std::array<at::Tensor, 4>& history,
                          const ParameterLayout& layout,
                          const at::Tensor& direction) {
  HistoryFeatures features = ComputeFeatures(history, layout, direction);
  return history[3] + features.move_scale * net.Predict(features.inputs);
}

at::Tensor ExtrapolateLinearly(const std::array<at::Tensor, 4>& history,
                               const std::array<int64_t, 4>& steps,
                               int64_t target_step) {
  double mean_step = 0;
  for (int64_t step : steps) mean_step += step / 4.0;
  double spread = 0;  // sum of squared deviations of the steps
  for (int64_t step : steps) spread += (step - mean_step) * (step - mean_step);
  at::Tensor prediction;
  for (int k = 0; k < 4; ++k) {
    // The fitted line's value at target_step, as a weight of snapshot k:
    // its share of the mean plus its share of the slope.
    const double coefficient =
        0.25 + (steps[k] - mean_step) * (target_step - mean_step) / spread;
    prediction = k == 0 ? history[k] * coefficient
                        : prediction.add(history[k], coefficient);
  }
  return prediction;
}

absl::StatusOr<IntrospectionTrainResult> TrainIntrospectionNet(
    const HistoryDataset& dataset, const IntrospectionTrainOptions& options,
    torch::optim::Optimizer& optimizer, IntrospectionNet* net,
    const std::function<void(int64_t, double, double)>& on_epoch) {
  const int64_t n = dataset.size();
  const int64_t val_rows = static_cast<int64_t>(options.val_fraction * n);
  if (n - val_rows < 1) {
    // Found after the record run: a failure of the run (exit 1).
    return absl::InternalError(
        absl::StrCat("the history dataset has ", n,
                     " rows; too few to train the introspection network"));
  }
  IntrospectionTrainResult result;
  result.train_rows = n - val_rows;
  result.val_rows = val_rows;
  absl::Status diverged;
  absl::Status status = CallTorch("training the introspection network", [&] {
    at::Generator generator = at::detail::createCPUGenerator(options.seed);
    at::Tensor order = at::randperm(n, generator, at::kLong);
    at::Tensor inputs = dataset.inputs.index_select(0, order).to(at::kFloat);
    at::Tensor targets = dataset.targets.index_select(0, order).to(at::kFloat);
    at::Tensor train_x = inputs.narrow(0, val_rows, n - val_rows);
    at::Tensor train_y = targets.narrow(0, val_rows, n - val_rows);
    at::Tensor val_x = inputs.narrow(0, 0, val_rows);
    at::Tensor val_y = targets.narrow(0, 0, val_rows);
    if (val_rows > 0) {
      result.no_move_error = MeanAbs(val_y);
      result.linear_error = MeanAbs(val_y + val_x.select(1, 0));
    }
    const int64_t rows = n - val_rows;
    for (int64_t epoch = 0; epoch < options.epochs; ++epoch) {
      at::Tensor perm = at::randperm(rows, generator, at::kLong);
      double loss_sum = 0;
      int64_t batches = 0;
      for (int64_t start = 0; start < rows; start += options.batch_size) {
        at::Tensor index =
            perm.narrow(0, start, std::min(options.batch_size, rows - start));
        at::Tensor diff = net->Forward(train_x.index_select(0, index)) -
                          train_y.index_select(0, index);
        at::Tensor loss =
            options.loss == "mse" ? diff.pow(2).mean() : diff.abs().mean();
        optimizer.zero_grad();
        loss.backward();
        optimizer.step();
        loss_sum += loss.item<double>();
        ++batches;
        ++result.steps;
      }
      result.last_train_loss = loss_sum / std::max<int64_t>(batches, 1);
      if (val_rows > 0) {
        result.val_error = MeanAbs(net->Predict(val_x) - val_y);
      }
      if (!std::isfinite(result.last_train_loss) ||
          !std::isfinite(result.val_error)) {
        diverged = absl::InternalError(absl::StrFormat(
            "training the introspection network: the loss became %f (held-out "
            "error %f) in epoch %d of %d; lower optim_config.lr or check the "
            "history dataset for non-finite rows",
            result.last_train_loss, result.val_error, epoch + 1,
            options.epochs));
        return;
      }
      if (on_epoch) on_epoch(epoch, result.last_train_loss, result.val_error);
    }
  });
  if (!status.ok()) return status;
  if (!diverged.ok()) return diverged;
  return result;
}

absl::StatusOr<IntrospectionNetConfig> ParseIntrospectionNetConfig(
    const RunConfig& config) {
  ASSIGN_OR_RETURN(IntrospectionNetConfig parsed,
                   ParseSection<IntrospectionNetConfig>(config.model_config(),
                                                        "model_config"));
  RETURN_IF_ERROR(
      CheckAtLeast("model_config.hidden_size", parsed.hidden_size(), 1));
  if (parsed.loss() != "l1" && parsed.loss() != "mse") {
    return ConfigFieldError(
        "model_config.loss",
        absl::StrCat("unknown loss '", parsed.loss(), "'; known: l1, mse"));
  }
  RETURN_IF_ERROR(CheckInRange("model_config.val_fraction",
                               parsed.val_fraction(), 0.0, 1.0,
                               Interval::kOpen));
  return parsed;
}

namespace {

// Model `introspective`: I as a Model over weight histories (inputs N x 4,
// outputs N x 1). It trains only in pipeline introspective_demo, by
// TrainIntrospectionNet on the rows of a history dataset (which has the one
// l1 / mse loss); the validator refuses every other pipeline, so the
// Trainer's Forward/Loss path never runs it.
class IntrospectiveModel : public Model {
 public:
  IntrospectiveModel(const IntrospectionNetConfig& config, int64_t inputs)
      : net_(config.hidden_size(), inputs) {}
  torch::nn::Module& module() override { return net_.module(); }
  at::Tensor Forward(const at::Tensor& inputs) override {
    return net_.Forward(inputs.reshape({-1, net_.inputs()})).unsqueeze(1);
  }
  IntrospectionNet& net() { return net_; }

 private:
  IntrospectionNet net_;
};

absl::Status ValidateIntrospectiveModel(const RunConfig& config) {
  RETURN_IF_ERROR(ParseIntrospectionNetConfig(config).status());
  if (config.pipeline() != kDemoPipeline) {
    return ConfigFieldError(
        "pipeline",
        absl::StrCat("model 'introspective' is the introspection network; it "
                     "trains on weight histories in pipeline ",
                     kDemoPipeline, " (got '", config.pipeline(),
                     "'). To speed up another model, add hook "
                     "introspection_jump to that model's config"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Model>> MakeIntrospectiveModel(
    const ModelContext& context) {
  absl::StatusOr<IntrospectionNetConfig> config =
      ParseIntrospectionNetConfig(*context.config);
  if (!config.ok()) return WithContext(config.status(), context.config_source);
  if (context.data.input_shape != std::vector<int64_t>{kHistoryInputs} &&
      context.data.input_shape != std::vector<int64_t>{kHistoryInputs + 1}) {
    return WithContext(
        ConfigFieldError(
            "data_config",
            absl::StrCat("model 'introspective' reads weight histories (4 "
                         "inputs per row, 5 with Adam's direction), not "
                         "inputs of shape [",
                         absl::StrJoin(context.data.input_shape, ", "), "]")),
        context.config_source);
  }
  std::unique_ptr<Model> model;
  absl::Status status = CallTorch("building the introspection network", [&] {
    model = std::make_unique<IntrospectiveModel>(*config,
                                                 context.data.input_shape[0]);
  });
  if (!status.ok()) return status;
  return model;
}

}  // namespace

IntrospectionNet* IntrospectionNetOf(Model& model) {
  auto* introspective = dynamic_cast<IntrospectiveModel*>(&model);
  return introspective == nullptr ? nullptr : &introspective->net();
}

OUROBOROS_REGISTER_MODEL(
    "introspective",
    "Introspection network (Sinha et al. 2017): a per-weight MLP that "
    "predicts w(2t) from w(0), w(0.4t), w(0.7t), w(t); its default config "
    "runs the whole demo",
    MakeIntrospectiveModel, kDefaultConfigJson, ValidateIntrospectiveModel,
    SectionDefaultsOf<IntrospectionNetConfig>());

}  // namespace ouroboros::introspective
