#include "plugins/srwm/fewshot_model.h"

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/modules/pooling.h>
#include <torch/nn/modules/rnn.h>

#include <cmath>
#include <cstdlib>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "ouroboros/base/errors.h"
#include "ouroboros/base/status_macros.h"
#include "ouroboros/config/config.h"
#include "ouroboros/config/config_checks.h"
#include "plugins/srwm/episode_source.h"
#include "plugins/srwm/srwm_kernel.h"
#include "plugins/srwm/srwm_layer.h"

namespace ouroboros::srwm {
namespace {

constexpr int kEncoderBlocks = 4;

// A baseline's width differs from the srwm model's; its inner width
// follows its own.
int64_t FeedForwardSize(const ModelShape& shape) {
  return shape.ff_size > 0 ? shape.ff_size : 2 * shape.width;
}

// Parameters of the sequence layer alone, per block.
int64_t SequenceLayerParameters(const ModelShape& shape) {
  const int64_t w = shape.width, h = shape.heads, d = shape.width / h;
  if (shape.sequence_model == "lstm") return 8 * w * w + 8 * w;
  if (shape.sequence_model == "deltanet") {
    return (w + 1) * h * (3 * d + 1);  // q, k, v and beta per head
  }
  return h * SrwmRows(d) * d;  // srwm, fake_sr
}

// One block's sequence layer: B x T x D -> B x T x D.
class SequenceLayer : public torch::nn::Module {
 public:
  explicit SequenceLayer(const ModelShape& shape)
      : kind_(shape.sequence_model),
        heads_(shape.heads),
        head_dim_(shape.width / shape.heads),
        fused_(shape.fused_kernel),
        input_softmax_(shape.input_softmax) {
    const int64_t d = head_dim_;
    if (kind_ == "lstm") {
      lstm_ = register_module(
          "lstm",
          torch::nn::LSTM(torch::nn::LSTMOptions(shape.width, shape.width)
                              .batch_first(true)));
    } else if (kind_ == "deltanet") {
      projection_ = register_module(
          "projection", torch::nn::Linear(shape.width, heads_ * (3 * d + 1)));
    } else {
      // Default W_0 ~ N(0, 1/d): unit-scale outputs on unit-scale inputs.
      const double std =
          shape.w0_init_std > 0 ? shape.w0_init_std : 1 / std::sqrt(double(d));
      at::Tensor w0 = at::randn({heads_, SrwmRows(d), d}) * std;
      // The last rows give the self-modification rates sigmoid(b).
      w0.narrow(1, 3 * d, SrwmRows(d) - 3 * d).add_(shape.beta_init);
      // Rows 2d..3d-1 give the key k.
      w0.narrow(1, 2 * d, d).add_(at::eye(d) * shape.w0_key_identity);
      w0_ = register_parameter("w0", w0);
    }
  }

  at::Tensor forward(const at::Tensor& x) {
    const int64_t batch = x.size(0), steps = x.size(1), d = head_dim_;
    if (kind_ == "lstm") return std::get<0>(lstm_->forward(x));
    if (kind_ == "deltanet") return DeltaNet(x);
    at::Tensor heads = x.view({batch, steps, heads_, d});
    if (input_softmax_) heads = at::softmax(heads, -1);
    at::Tensor y = kind_ == "fake_sr" ? SrwmFrozen(heads, w0_)
                   : fused_           ? SrwmFused(heads, w0_)
                                      : SrwmNaive(heads, w0_);
    return y.reshape({batch, steps, heads_ * d});
  }

 private:
  // Fast weights with the delta rule (Schlag et al. 2021), per head:
  //   W_t = W_{t-1} + sigmoid(b_t) (v_t - W_{t-1} k~_t) k~_t^T, y_t = W_t q~_t
  // with softmax-normalised q and k, as in the SRWM.
  at::Tensor DeltaNet(const at::Tensor& x) {
    const int64_t batch = x.size(0), steps = x.size(1), d = head_dim_;
    at::Tensor p = projection_->forward(x).view({batch, steps, heads_, -1});
    at::Tensor q = at::softmax(p.narrow(-1, 0, d), -1);
    at::Tensor k = at::softmax(p.narrow(-1, d, d), -1);
    at::Tensor v = p.narrow(-1, 2 * d, d);
    at::Tensor beta = at::sigmoid(p.narrow(-1, 3 * d, 1));
    at::Tensor w = at::zeros({batch, heads_, d, d}, x.options());
    std::vector<at::Tensor> outputs;
    for (int64_t t = 0; t < steps; ++t) {
      at::Tensor k_t = k.select(1, t);
      at::Tensor old_v = (w * k_t.unsqueeze(-2)).sum(-1);
      w = w + (beta.select(1, t) * (v.select(1, t) - old_v)).unsqueeze(-1) *
                  k_t.unsqueeze(-2);
      outputs.push_back((w * q.select(1, t).unsqueeze(-2)).sum(-1));
    }
    return at::stack(outputs, 1).reshape({batch, steps, heads_ * d});
  }

  std::string kind_;
  int64_t heads_, head_dim_;
  bool fused_;
  bool input_softmax_;
  torch::nn::LSTM lstm_{nullptr};
  torch::nn::Linear projection_{nullptr};
  at::Tensor w0_;
};

class Block : public torch::nn::Module {
 public:
  explicit Block(const ModelShape& shape)
      : sequence_reads_residual_(shape.srwm_reads_residual) {
    const int64_t w = shape.width, ff = FeedForwardSize(shape);
    norm1_ = register_module(
        "norm1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({w})));
    sequence_ =
        register_module("sequence", std::make_shared<SequenceLayer>(shape));
    out_ = register_module("out", torch::nn::Linear(w, w));
    norm2_ = register_module(
        "norm2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({w})));
    ff1_ = register_module("ff1", torch::nn::Linear(w, ff));
    ff2_ = register_module("ff2", torch::nn::Linear(ff, w));
  }

  at::Tensor forward(at::Tensor x) {
    if (sequence_reads_residual_) {
      // The authors' SRWM layer: the SRWM sees the residual stream itself.
      x = norm1_->forward(x) + out_->forward(sequence_->forward(x));
    } else {
      x = x + out_->forward(sequence_->forward(norm1_->forward(x)));
    }
    return x + ff2_->forward(at::relu(ff1_->forward(norm2_->forward(x))));
  }

 private:
  bool sequence_reads_residual_;
  torch::nn::LayerNorm norm1_{nullptr}, norm2_{nullptr};
  std::shared_ptr<SequenceLayer> sequence_;
  torch::nn::Linear out_{nullptr}, ff1_{nullptr}, ff2_{nullptr};
};

class FewShotModel : public Model {
 public:
  FewShotModel(const ModelShape& shape, int64_t ways, int64_t image_side)
      : ways_(ways),
        image_side_(image_side),
        label_input_scale_(shape.label_input_scale),
        query_loss_only_(shape.query_loss_only) {
    const int64_t c = shape.encoder_channels;
    for (int i = 0; i < kEncoderBlocks; ++i) {
      encoder_->push_back(torch::nn::Conv2d(
          torch::nn::Conv2dOptions(i == 0 ? 1 : c, c, 3).padding(1)));
      encoder_->push_back(torch::nn::BatchNorm2d(c));
      encoder_->push_back(torch::nn::ReLU());
      encoder_->push_back(torch::nn::MaxPool2d(2));
    }
    module_.register_module("encoder", encoder_);
    input_ = module_.register_module("input",
                                     torch::nn::Linear(c + ways, shape.width));
    for (int64_t i = 0; i < shape.layers; ++i) {
      blocks_.push_back(module_.register_module(
          absl::StrCat("block", i), std::make_shared<Block>(shape)));
    }
    norm_ = module_.register_module(
        "norm",
        torch::nn::LayerNorm(torch::nn::LayerNormOptions({shape.width})));
    readout_ = module_.register_module("readout",
                                       torch::nn::Linear(shape.width, ways));
  }

  torch::nn::Module& module() override { return module_; }

  at::Tensor Forward(const at::Tensor& inputs) override {
    const int64_t batch = inputs.size(0), steps = inputs.size(1);
    const int64_t pixels = image_side_ * image_side_;
    at::Tensor images =
        inputs.narrow(-1, 0, pixels)
            .reshape({batch * steps, 1, image_side_, image_side_});
    at::Tensor features = encoder_->forward(images).reshape({batch, steps, -1});
    // Step t shows image t and the label of step t-1. The sequence layers
    // read it as two sub-steps with the same input layout [features, label]:
    // first the labelled pair (image t-1, label t-1), then image t with no
    // label, whose output is step t's prediction. A support pair and a later
    // query image of its class thus arrive in the same coordinates.
    at::Tensor labels = inputs.narrow(-1, pixels, ways_) * label_input_scale_;
    at::Tensor previous_features =
        at::constant_pad_nd(features.narrow(1, 0, steps - 1), {0, 0, 1, 0});
    at::Tensor pair = at::cat({previous_features, labels}, -1);
    at::Tensor image = at::cat({features, at::zeros_like(labels)}, -1);
    at::Tensor h = input_->forward(
        at::stack({pair, image}, 2).reshape({batch, 2 * steps, -1}));
    for (auto& block : blocks_) h = block->forward(h);
    h = h.reshape({batch, steps, 2, -1}).select(2, 1);
    return readout_->forward(norm_->forward(h));
  }

  // Cross-entropy over every step of every episode.
  at::Tensor Loss(const at::Tensor& outputs,
                  const at::Tensor& targets) override {
    return Model::Loss(outputs.flatten(0, 1), targets.flatten());
  }

  // model_config.query_loss_only: the support steps' targets are ignored
  // (-100, nll_loss's ignore_index). Step t is a support step exactly when
  // step t + 1 shows its label (PackEpisodeInputs), and the last step is
  // always a query.
  absl::StatusOr<double> TrainStep(const Batch& batch,
                                   TrainingContext& training) override {
    if (!query_loss_only_) return training.StandardTrainStep(batch);
    Batch queries_only;
    absl::Status status = CallTorch("masking the support steps", [&] {
      const int64_t steps = batch.inputs.size(1);
      const int64_t labels_at = batch.inputs.size(2) - ways_;
      at::Tensor shows_label =
          batch.inputs.narrow(2, labels_at, ways_).ne(0).any(-1);
      at::Tensor is_support = at::constant_pad_nd(
          shows_label.narrow(1, 1, steps - 1).to(at::kInt), {0, 1});
      queries_only.inputs = batch.inputs;
      queries_only.targets =
          batch.targets.masked_fill(is_support.to(at::kBool), -100);
    });
    if (!status.ok()) return status;
    return training.StandardTrainStep(queries_only);
  }

  // Accuracy and loss over the query steps of the fixed episodes.
  absl::StatusOr<std::map<std::string, double>> Evaluate(
      Split /*split*/, const Dataset& data,
      TrainingContext& /*training*/) override {
    ASSIGN_OR_RETURN(EpisodeScore score, ScoreEpisodes(*this, data));
    return std::map<std::string, double>{{"accuracy", score.accuracy},
                                         {"loss", score.loss}};
  }

  // The meta-test of the best checkpoint, into fewshot.json.
  absl::Status OnRunEnd(TrainingContext& training) override {
    meta_test_lines_.clear();
    return MetaTest(*this, training, &meta_test_lines_);
  }

  // The meta-test, where the summary's val and test lines score the last
  // model on the fixed episodes.
  std::vector<std::string> SummaryLines() const override {
    std::vector<std::string> lines = meta_test_lines_;
    if (!lines.empty()) {
      lines.push_back(
          absl::StrFormat("chance %.2f%% (%d-way)", 100.0 / ways_, ways_));
    }
    return lines;
  }

  // plots/meta_validation.png: query accuracy and loss on the fixed
  // validation episodes, per epoch and (with run_config.eval_every_steps)
  // every N steps, which shows when the model leaves chance.
  std::vector<FigureSpec> Figures() const override {
    FigureSpec figure;
    figure.name = "meta_validation";
    figure.title = absl::StrCat("meta-validation, ", ways_,
                                "-way episodes (chance ", 1.0 / ways_, ")");
    figure.series = {"val/accuracy", "evals/val/accuracy", "val/loss"};
    figure.chance = {{"val/accuracy", 1.0 / ways_},
                     {"evals/val/accuracy", 1.0 / ways_}};
    return {figure};
  }

 private:
  int64_t ways_, image_side_;
  std::vector<std::string> meta_test_lines_;  // MetaTest's, for the summary
  double label_input_scale_;
  bool query_loss_only_;
  torch::nn::Module module_;
  torch::nn::Sequential encoder_;
  torch::nn::Linear input_{nullptr}, readout_{nullptr};
  std::vector<std::shared_ptr<Block>> blocks_;
  torch::nn::LayerNorm norm_{nullptr};
};

}  // namespace

absl::Status CheckSizes(
    absl::string_view section,
    std::initializer_list<std::pair<const char*, int32_t>> fields) {
  for (const auto& [name, value] : fields) {
    RETURN_IF_ERROR(CheckAtLeast(absl::StrCat(section, ".", name), value, 1));
  }
  return absl::OkStatus();
}

void FillDerivedSrwmDefaults(SrwmConfig* srwm, const RunConfig&) {
  if (!srwm->has_w0_init_std() && srwm->num_heads() > 0 &&
      srwm->hidden_size() % srwm->num_heads() == 0) {
    const int64_t d = srwm->hidden_size() / srwm->num_heads();
    srwm->set_w0_init_std(1 / std::sqrt(double(d)));
  }
}

absl::StatusOr<SrwmConfig> ParseSrwmConfig(const RunConfig& config) {
  ASSIGN_OR_RETURN(SrwmConfig srwm, ParseSection<SrwmConfig>(
                                        config.model_config(), "model_config"));
  RETURN_IF_ERROR(
      CheckOneOf("model_config.sequence_model", srwm.sequence_model(),
                 {"srwm", "deltanet", "fake_sr", "lstm"}, "sequence model"));
  RETURN_IF_ERROR(CheckOneOf("model_config.srwm_kernel", srwm.srwm_kernel(),
                             {"fused", "naive"}, "kernel"));
  FillDerivedSrwmDefaults(&srwm, config);
  RETURN_IF_ERROR(CheckSizes("model_config",
                             {{"hidden_size", srwm.hidden_size()},
                              {"num_heads", srwm.num_heads()},
                              {"num_layers", srwm.num_layers()},
                              {"encoder_channels", srwm.encoder_channels()}}));
  if (srwm.hidden_size() % srwm.num_heads() != 0) {
    return ConfigFieldError(
        "model_config.hidden_size",
        absl::StrCat("must be a multiple of num_heads (got ",
                     srwm.hidden_size(), " and ", srwm.num_heads(), " heads)"));
  }
  if (srwm.has_ff_size()) {
    RETURN_IF_ERROR(CheckSizes("model_config", {{"ff_size", srwm.ff_size()}}));
  }
  for (const auto& [name, value] :
       {std::pair<const char*, double>{"label_input_scale",
                                       srwm.label_input_scale()},
        {"w0_init_std", srwm.w0_init_std()}}) {
    RETURN_IF_ERROR(
        CheckFiniteAbove(absl::StrCat("model_config.", name), value, 0));
  }
  for (const auto& [name, value] :
       {std::pair<const char*, double>{"w0_key_identity",
                                       srwm.w0_key_identity()},
        {"beta_init", srwm.beta_init()}}) {
    if (!std::isfinite(value)) {
      return ConfigFieldError(
          absl::StrCat("model_config.", name),
          absl::StrCat("must be a finite number (got ", value, ")"));
    }
  }
  if (srwm.query_loss_only() &&
      config.data_config().dataset() == kEpisodeDataSource) {
    absl::StatusOr<FewshotEpisodesConfig> episodes =
        ParseEpisodesConfig(config);
    if (episodes.ok() && episodes->layout() == kSequentialLayout) {
      return ConfigFieldError(
          "model_config.query_loss_only",
          "a sequential stream shows every step's label at the next step, so "
          "every step is a query: leave it out");
    }
  }
  RETURN_IF_ERROR(CheckOneOf("model_config.srwm_input", srwm.srwm_input(),
                             {"layer_norm", "residual"}, "input"));
  return srwm;
}

int64_t CountParameters(const ModelShape& shape, int64_t ways) {
  const int64_t c = shape.encoder_channels, w = shape.width;
  const int64_t ff = FeedForwardSize(shape);
  int64_t count = 0;
  for (int i = 0; i < kEncoderBlocks; ++i) {
    count += (i == 0 ? 1 : c) * c * 9 + c + 2 * c;  // conv + batch norm
  }
  count += (c + ways) * w + w;
  const int64_t block = 2 * (2 * w) + (w * w + w) + (w * ff + ff) +
                        (ff * w + w) + SequenceLayerParameters(shape);
  count += shape.layers * block;
  count += 2 * w + w * ways + ways;
  return count;
}

ModelShape ResolveModelShape(const SrwmConfig& config, int64_t ways) {
  ModelShape shape;
  shape.sequence_model = "srwm";
  shape.width = config.hidden_size();
  shape.heads = config.num_heads();
  shape.layers = config.num_layers();
  shape.ff_size = config.has_ff_size() ? config.ff_size() : 0;
  shape.encoder_channels = config.encoder_channels();
  shape.fused_kernel = config.srwm_kernel() != "naive";
  shape.w0_init_std = config.w0_init_std();
  shape.input_softmax = config.input_softmax();
  shape.beta_init = config.beta_init();
  shape.w0_key_identity = config.w0_key_identity();
  shape.srwm_reads_residual = config.srwm_input() == "residual";
  shape.query_loss_only = config.query_loss_only();
  shape.label_input_scale = config.label_input_scale();
  const std::string& kind = config.sequence_model();
  if (kind == "srwm" || kind == "fake_sr") {
    shape.sequence_model = kind;
    return shape;
  }
  // Equal parameter count: the baseline's width (a multiple of the heads,
  // for DeltaNet's per-head split) that comes closest to the srwm model.
  const int64_t target = CountParameters(shape, ways);
  ModelShape best = shape;
  best.sequence_model = kind;
  best.srwm_reads_residual = false;  // the authors' wiring of the SRWM only
  int64_t best_gap = std::numeric_limits<int64_t>::max();
  // (The LSTM has no heads: any width.)
  const int64_t step = kind == "lstm" ? 1 : shape.heads;
  for (int64_t width = step; width <= 4 * shape.width; width += step) {
    ModelShape candidate = best;
    candidate.width = width;
    const int64_t gap = std::llabs(CountParameters(candidate, ways) - target);
    if (gap < best_gap) {
      best_gap = gap;
      best.width = width;
    }
  }
  return best;
}

absl::StatusOr<std::unique_ptr<Model>> MakeFewShotModel(
    const ModelContext& context) {
  absl::StatusOr<SrwmConfig> config = ParseSrwmConfig(*context.config);
  if (!config.ok()) return WithContext(config.status(), context.config_source);
  // Episodes: input_shape {T, pixels + N}, N classes.
  const DataSpec& data = context.data;
  const int64_t ways = data.num_classes;
  const int64_t pixels =
      data.input_shape.size() == 2 ? data.input_shape[1] - ways : 0;
  const int64_t side =
      std::llround(std::sqrt(double(std::max<int64_t>(pixels, 0))));
  if (ways < 2 || pixels < 1 || side * side != pixels || side < 16) {
    return absl::InvalidArgumentError(
        "the srwm model reads few-shot episodes (T x (square image of side >= "
        "16 + N labels)): give it \"data_config\": {\"dataset\": "
        "\"fewshot_episodes\"}");
  }
  const ModelShape shape = ResolveModelShape(*config, ways);
  std::unique_ptr<Model> model;
  absl::Status status = CallTorch("building the srwm model", [&] {
    model = std::make_unique<FewShotModel>(shape, ways, side);
  });
  if (!status.ok()) return status;
  return model;
}

}  // namespace ouroboros::srwm
