#include "plugins/quine/quine.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>
#include <torch/utils.h>

#include <cmath>
#include <optional>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "glog/logging.h"
#include "ouroboros/api/data.h"
#include "ouroboros/api/plugin_api.h"
#include "ouroboros/base/errors.h"
#include "ouroboros/base/status_macros.h"
#include "ouroboros/config/config.h"
#include "ouroboros/config/config_checks.h"
#include "plugins/quine/default_config.h"

namespace ouroboros::quine {
namespace {

constexpr char kVanilla[] = "vanilla";
constexpr char kAuxiliary[] = "auxiliary";
constexpr char kAbsoluteSrLoss[] = "absolute";
constexpr char kRelativeSrLoss[] = "relative";
constexpr char kRawPrint[] = "none";
constexpr char kInitialNormPrint[] = "initial_norm";
constexpr char kPerMatrixPrint[] = "per_matrix";
// Keeps the coordinate shuffles apart from the image shuffles of the same
// seed.
constexpr uint64_t kCoordinateOrderSeedOffset = 0x51ee;

int64_t FlattenedSize(const std::vector<int64_t>& shape) {
  int64_t size = 1;
  for (int64_t d : shape) size *= d;
  return size;
}

}  // namespace

bool IsAuxiliary(const QuineConfig& config) {
  return config.variant() == kAuxiliary;
}

void FillDerivedQuineDefaults(QuineConfig* quine, const RunConfig&) {
  const bool auxiliary = IsAuxiliary(*quine);
  if (!quine->has_coordinate_embedding()) {
    quine->set_coordinate_embedding(auxiliary ? 50 : 100);
  }
  if (auxiliary && !quine->has_image_embedding()) {
    quine->set_image_embedding(50);
  }
}

absl::StatusOr<QuineConfig> ParseQuineConfig(const RunConfig& config) {
  ASSIGN_OR_RETURN(
      QuineConfig quine,
      ParseSection<QuineConfig>(config.model_config(), "model_config"));
  FillDerivedQuineDefaults(&quine, config);
  RETURN_IF_ERROR(CheckOneOf("model_config.variant", quine.variant(),
                             {kVanilla, kAuxiliary}, "variant"));
  const bool auxiliary = IsAuxiliary(quine);
  for (const auto& [field, value, least] :
       {std::make_tuple("coordinate_embedding", quine.coordinate_embedding(),
                        1),
        std::make_tuple("image_embedding", quine.image_embedding(),
                        auxiliary ? 1 : 0),
        std::make_tuple("coordinates_per_step", quine.coordinates_per_step(),
                        0),
        std::make_tuple("regenerate_every_epochs",
                        quine.regenerate_every_epochs(), 0),
        std::make_tuple("spectral_radius_iterations",
                        quine.spectral_radius_iterations(), 0)}) {
    RETURN_IF_ERROR(
        CheckAtLeast(absl::StrCat("model_config.", field), value, least));
  }
  if (quine.hidden_sizes().empty()) {
    return ConfigFieldError("model_config.hidden_sizes",
                            "must list at least one hidden layer width");
  }
  for (int i = 0; i < quine.hidden_sizes_size(); ++i) {
    RETURN_IF_ERROR(
        CheckAtLeast(absl::StrCat("model_config.hidden_sizes[", i, "]"),
                     quine.hidden_sizes(i), 1));
  }
  if (auxiliary) {
    if (!(quine.task_weight() > 0 && std::isfinite(quine.task_weight()))) {
      return ConfigFieldError(
          "model_config.task_weight",
          absl::StrCat("the auxiliary quine needs lambda > 0 in L = L_SR + "
                       "lambda * L_task (got ",
                       quine.task_weight(), ")"));
    }
  } else {
    // Settings of the auxiliary variant would silently do nothing here.
    for (const auto& [field, is_set] :
         {std::pair<const char*, bool>{"image_embedding",
                                       quine.has_image_embedding()},
          {"task_weight", quine.task_weight() != 0},
          {"coordinates_per_step", quine.coordinates_per_step() != 0},
          {"task_only", quine.task_only()},
          {"print_task_weight", quine.print_task_weight() != 0}}) {
      if (is_set) {
        return ConfigFieldError(
            absl::StrCat("model_config.", field),
            "only for variant 'auxiliary' (the vanilla quine's training set "
            "is its coordinates, run_config.batch_size per step)");
      }
    }
  }
  if (quine.has_coordinate_projection_std() &&
      !(quine.coordinate_projection_std() > 0 &&
        std::isfinite(quine.coordinate_projection_std()))) {
    return ConfigFieldError("model_config.coordinate_projection_std",
                            absl::StrCat("must be a finite number > 0 (got ",
                                         quine.coordinate_projection_std(),
                                         "); leave it out for 1/sqrt(N)"));
  }
  for (const auto& [field, weight] :
       {std::pair<const char*, double>{"contraction_weight",
                                       quine.contraction_weight()},
        {"jacobian_weight", quine.jacobian_weight()},
        {"print_task_weight", quine.print_task_weight()},
        {"two_step_weight", quine.two_step_weight()}}) {
    RETURN_IF_ERROR(
        CheckFiniteAtLeast(absl::StrCat("model_config.", field), weight, 0));
  }
  if (quine.contraction_weight() > 0 &&
      quine.spectral_radius_iterations() <= 0) {
    return ConfigFieldError(
        "model_config.contraction_weight",
        "the penalty acts along the direction the regeneration's power "
        "iteration finds: set model_config.spectral_radius_iterations > 0");
  }
  RETURN_IF_ERROR(CheckAtLeast("model_config.contraction_ramp_epochs",
                               quine.contraction_ramp_epochs(), 0));
  RETURN_IF_ERROR(CheckAtLeast("model_config.contraction_directions",
                               quine.contraction_directions(), 1));
  RETURN_IF_ERROR(CheckInRange("model_config.contraction_target",
                               quine.contraction_target(), 0.0, 1.0,
                               Interval::kOpenClosed));
  if (quine.jacobian_at_print() && quine.print_normalization() == kRawPrint) {
    return ConfigFieldError(
        "model_config.jacobian_at_print",
        "the print's own print is only computed whole with a scaled print: "
        "set model_config.print_normalization");
  }
  RETURN_IF_ERROR(CheckInRange("model_config.regeneration_damping",
                               quine.regeneration_damping(), 0.0, 1.0,
                               Interval::kOpenClosed));
  RETURN_IF_ERROR(CheckOneOf("model_config.sr_loss", quine.sr_loss(),
                             {kAbsoluteSrLoss, kRelativeSrLoss}, "sr_loss"));
  RETURN_IF_ERROR(CheckOneOf(
      "model_config.print_normalization", quine.print_normalization(),
      {kRawPrint, kInitialNormPrint, kPerMatrixPrint}, "print_normalization"));
  RETURN_IF_ERROR(CheckInRange("model_config.zero_quine_fraction",
                               quine.zero_quine_fraction(), 0.0, 1.0,
                               Interval::kOpen));
  return quine;
}

absl::Status ValidateQuineConfig(const RunConfig& config) {
  ASSIGN_OR_RETURN(QuineConfig quine, ParseQuineConfig(config));
  // The vanilla quine's only data are its own coordinates; the auxiliary
  // one classifies images beside them.
  const bool coordinates =
      config.data_config().dataset() == kCoordinatesDataSource;
  if (!IsAuxiliary(quine) && !coordinates) {
    return ConfigFieldError(
        "data_config.dataset",
        absl::StrCat("the vanilla quine trains on its own coordinates: set "
                     "\"",
                     kCoordinatesDataSource, "\" (got '",
                     config.data_config().dataset(), "')"));
  }
  if (IsAuxiliary(quine) && coordinates) {
    return ConfigFieldError(
        "data_config.dataset",
        absl::StrCat("the auxiliary quine classifies images: name an image "
                     "dataset such as mnist_digits (got '",
                     kCoordinatesDataSource, "')"));
  }
  return absl::OkStatus();
}

absl::StatusOr<DataSplits> MakeCoordinateSplits(
    const DataSourceContext& context) {
  absl::StatusOr<QuineConfig> quine = ParseQuineConfig(*context.config);
  if (!quine.ok()) return WithContext(quine.status(), context.config_source);
  DataSplits splits;
  RETURN_IF_ERROR(CallTorch("listing the quine's coordinates", [&] {
    const int64_t n = MakeQuineLayout(*quine, 0).num_parameters;
    // Every split is every coordinate: the quine is trained and measured on
    // all of its own weights.
    Dataset coordinates;
    coordinates.inputs = at::arange(n, at::kLong).unsqueeze(1);
    coordinates.targets = at::arange(n, at::kLong);
    coordinates.spec = DataSpec{{1}, 0};
    splits =
        DataSplits{coordinates, coordinates, coordinates, coordinates.spec, {}};
  }));
  return splits;
}

absl::Status ValidateCoordinateSource(const RunConfig& config) {
  if (config.model() != "quine") {
    return ConfigFieldError(
        "data_config.dataset",
        absl::StrCat("'", kCoordinatesDataSource,
                     "' are the coordinates of a quine's weights: for model "
                     "quine only (got model '",
                     config.model(), "')"));
  }
  return ParseSection<QuineCoordinatesConfig>(
             config.data_config().source_config(), "data_config.source_config")
      .status();
}

QuineLayout MakeQuineLayout(const QuineConfig& config, int64_t num_classes) {
  QuineLayout layout;
  auto add = [&layout](int64_t rows, int64_t cols) {
    QuineLayout::Matrix matrix{rows, cols, layout.num_parameters};
    layout.num_parameters += rows * cols;
    return matrix;
  };
  int64_t width = config.coordinate_embedding() + config.image_embedding();
  for (int32_t hidden : config.hidden_sizes()) {
    layout.hidden.push_back(add(hidden, width));
    width = hidden;
  }
  layout.weight_head = add(1, width);
  if (IsAuxiliary(config)) layout.class_head = add(num_classes, width);
  return layout;
}

struct QuineModel::Modules {
  torch::nn::Module module;
  at::Tensor theta;
  // Fixed random projections: buffers, so checkpoints carry them, but never
  // parameters (they are not part of what the quine predicts).
  at::Tensor coordinate_projection;  // num_parameters x coordinate_embedding
  at::Tensor image_projection;       // image features x image_embedding
};

QuineModel::QuineModel(const QuineConfig& config, const DataSpec& data,
                       uint64_t seed)
    : config_(config),
      layout_(MakeQuineLayout(config, data.num_classes)),
      modules_(std::make_unique<Modules>()),
      seed_(seed) {
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  at::Tensor theta = at::empty({layout_.num_parameters});
  for (const QuineLayout::Matrix* m : Matrices()) {
    // LeCun normal, the initialization SELU's self-normalization assumes.
    theta.narrow(0, m->offset, m->rows * m->cols)
        .copy_(at::randn({m->rows * m->cols}, generator) /
               std::sqrt(static_cast<double>(m->cols)));
  }
  modules_->theta = modules_->module.register_parameter("theta", theta);
  const double projection_std =
      config.has_coordinate_projection_std()
          ? config.coordinate_projection_std()
          : 1 / std::sqrt(static_cast<double>(layout_.num_parameters));
  modules_->coordinate_projection = modules_->module.register_buffer(
      "coordinate_projection",
      at::randn({layout_.num_parameters, config.coordinate_embedding()},
                generator) *
          projection_std);
  if (auxiliary()) {
    const int64_t features = FlattenedSize(data.input_shape);
    modules_->image_projection = modules_->module.register_buffer(
        "image_projection",
        at::randn({features, config.image_embedding()}, generator) /
            std::sqrt(static_cast<double>(features)));
  }
  torch::NoGradGuard no_grad;
  initial_weight_sq_ = modules_->theta.pow(2).sum().item<double>();
  for (const QuineLayout::Matrix* m : Matrices()) {
    const at::Tensor entries = View(modules_->theta, *m);
    initial_centered_sq_.push_back(
        (entries - entries.mean()).pow(2).sum().item<double>());
  }
}

QuineModel::~QuineModel() = default;

std::vector<const QuineLayout::Matrix*> QuineModel::Matrices() const {
  std::vector<const QuineLayout::Matrix*> matrices;
  for (const QuineLayout::Matrix& m : layout_.hidden) matrices.push_back(&m);
  matrices.push_back(&layout_.weight_head);
  if (auxiliary()) matrices.push_back(&layout_.class_head);
  return matrices;
}

torch::nn::Module& QuineModel::module() { return modules_->module; }

const at::Tensor& QuineModel::weights() const { return modules_->theta; }

const at::Tensor& QuineModel::coordinate_projection() const {
  return modules_->coordinate_projection;
}

at::Tensor QuineModel::View(const at::Tensor& theta,
                            const QuineLayout::Matrix& matrix) const {
  return theta.narrow(0, matrix.offset, matrix.rows * matrix.cols)
      .view({matrix.rows, matrix.cols});
}

at::Tensor QuineModel::Body(const at::Tensor& input, int64_t first_column,
                            const QuineLayout::Matrix& head,
                            const at::Tensor& theta) {
  // The input fills only its own columns of the first layer (coordinate or
  // image half); the other half is zero, so its columns are skipped.
  at::Tensor h = at::linear(
      input,
      View(theta, layout_.hidden[0]).narrow(1, first_column, input.size(1)));
  // Without autograd (evaluation, regeneration) SELU can overwrite its input.
  const bool in_place = !at::GradMode::is_enabled();
  for (size_t i = 0;; ++i) {
    h = in_place ? at::selu_(h) : at::selu(h);
    if (i + 1 == layout_.hidden.size()) break;
    h = at::linear(h, View(theta, layout_.hidden[i + 1]));
  }
  return at::linear(h, View(theta, head));
}

at::Tensor QuineModel::Forward(const at::Tensor& inputs) {
  if (!auxiliary()) return PredictWeights(inputs.flatten());
  at::Tensor embedded =
      at::matmul(inputs.flatten(1).to(at::kFloat), modules_->image_projection);
  if (config_.print_task_weight() > 0 && at::GradMode::is_enabled()) {
    step_images_ = embedded;
  }
  return Body(embedded, config_.coordinate_embedding(), layout_.class_head,
              modules_->theta);
}

at::Tensor QuineModel::Loss(const at::Tensor& outputs,
                            const at::Tensor& targets) {
  if (!auxiliary()) return ReplicationLoss(outputs, targets);
  at::Tensor task = Model::Loss(outputs, targets);
  if (config_.task_only()) return task;
  if (config_.print_task_weight() <= 0 || !step_images_.defined()) {
    return SelfReplicationLoss(NextCoordinates()) +
           config_.task_weight() * task;
  }
  // The print's own task loss, on the images Forward embedded: the print
  // comes from the same forward the replication loss uses (PredictWeights
  // keeps it with a scaled print).
  const at::Tensor coordinates = NextCoordinates();
  const at::Tensor predictions = PredictWeights(coordinates);
  const at::Tensor printed =
      step_print_.defined() ? step_print_ : PrintOf(modules_->theta);
  const at::Tensor print_logits =
      Body(step_images_, config_.coordinate_embedding(), layout_.class_head,
           printed);
  step_images_ = at::Tensor();
  const at::Tensor print_task = Model::Loss(print_logits, targets);
  return ReplicationLoss(predictions, coordinates) +
         config_.task_weight() * task +
         config_.print_task_weight() * print_task;
}

at::Tensor QuineModel::NextCoordinates() {
  const int64_t n = num_parameters();
  const int64_t k = config_.coordinates_per_step();
  if (k == 0 || k >= n) {
    if (!coordinate_order_.defined()) coordinate_order_ = at::arange(n);
    return coordinate_order_;
  }
  if (!coordinate_order_.defined() || coordinate_cursor_ + k > n) {
    coordinate_order_ =
        EpochOrder(n, seed_ + kCoordinateOrderSeedOffset, coordinate_pass_++);
    coordinate_cursor_ = 0;
  }
  at::Tensor batch =
      coordinate_order_.slice(0, coordinate_cursor_, coordinate_cursor_ + k);
  coordinate_cursor_ += k;
  return batch;
}

absl::Status QuineModel::SaveState(ComponentState* state) const {
  if (contraction_directions_.defined()) {
    state->SetTensor("contraction_directions", contraction_directions_);
  }
  if (config_.contraction_ramp_epochs() > 0) {
    state->SetInt("epochs_done", epochs_done_);
  }
  if (!auxiliary()) return absl::OkStatus();
  state->SetInt("coordinate_pass", coordinate_pass_);
  state->SetInt("coordinate_cursor", coordinate_cursor_);
  if (coordinate_order_.defined()) {
    state->SetTensor("coordinate_order", coordinate_order_);
  }
  return absl::OkStatus();
}

absl::Status QuineModel::LoadState(const ComponentState& state) {
  if (state.Has("contraction_directions")) {
    ASSIGN_OR_RETURN(at::Tensor directions,
                     state.GetTensor("contraction_directions"));
    const int64_t k = config_.contraction_directions();
    if (directions.dim() != 2 ||
        (directions.size(0) != k &&
         !(config_.contraction_previous_directions() &&
           directions.size(0) == 2 * k)) ||
        directions.size(1) != num_parameters() ||
        directions.scalar_type() != at::kFloat) {
      return absl::InvalidArgumentError(absl::StrCat(
          "contraction_directions is not ", config_.contraction_directions(),
          " x ", num_parameters(), " float32 values"));
    }
    contraction_directions_ = directions;
  }
  if (config_.contraction_ramp_epochs() > 0) {
    ASSIGN_OR_RETURN(epochs_done_, state.GetInt("epochs_done"));
  }
  if (!auxiliary()) return absl::OkStatus();
  ASSIGN_OR_RETURN(const int64_t pass, state.GetInt("coordinate_pass"));
  ASSIGN_OR_RETURN(const int64_t cursor, state.GetInt("coordinate_cursor"));
  at::Tensor order;
  if (state.Has("coordinate_order")) {
    ASSIGN_OR_RETURN(order, state.GetTensor("coordinate_order"));
    if (order.dim() != 1 || order.size(0) != num_parameters() ||
        order.scalar_type() != at::kLong) {
      return absl::InvalidArgumentError(absl::StrCat(
          "coordinate_order is not ", num_parameters(), " int64 indices"));
    }
  }
  if (pass < 0 || cursor < 0 || cursor > num_parameters()) {
    return absl::InvalidArgumentError(absl::StrCat("coordinate_pass ", pass,
                                                   " or coordinate_cursor ",
                                                   cursor, " out of range"));
  }
  coordinate_pass_ = pass;
  coordinate_cursor_ = cursor;
  coordinate_order_ = order;
  return absl::OkStatus();
}

bool QuineModel::normalizes_print() const {
  return config_.print_normalization() != kRawPrint;
}

at::Tensor QuineModel::PredictWeights(const at::Tensor& coordinates) {
  if (normalizes_print()) {
    // The scale needs every coordinate's raw output: the rows are taken
    // from the whole print, which the step's two-step loss reuses.
    at::Tensor print = PrintOf(modules_->theta);
    if (at::GradMode::is_enabled()) step_print_ = print;
    return print.index_select(0, coordinates);
  }
  // Row c of the projection is what the one-hot vector e_c would select.
  return PredictFromEmbedding(
      modules_->coordinate_projection.index_select(0, coordinates));
}

at::Tensor QuineModel::PrintOf(const at::Tensor& theta) {
  at::Tensor print =
      Body(modules_->coordinate_projection, 0, layout_.weight_head, theta)
          .squeeze(1);
  if (!normalizes_print()) return print;
  if (config_.print_normalization() == kInitialNormPrint) {
    return print * (std::sqrt(initial_weight_sq_) / print.norm());
  }
  // per_matrix: each matrix's print centred, then scaled to the centred sum
  // of squares that matrix had at initialization. The matrices are theta's
  // consecutive pieces, in the order the constructor drew them.
  std::vector<at::Tensor> pieces;
  size_t index = 0;
  for (const QuineLayout::Matrix* m : Matrices()) {
    const at::Tensor piece = print.narrow(0, m->offset, m->rows * m->cols);
    const at::Tensor centered = piece - piece.mean();
    pieces.push_back(centered * (std::sqrt(initial_centered_sq_[index++]) /
                                 centered.norm()));
  }
  return at::cat(pieces);
}

at::Tensor QuineModel::PredictFromEmbedding(const at::Tensor& embedded) {
  return Body(embedded, 0, layout_.weight_head, modules_->theta).squeeze(1);
}

at::Tensor QuineModel::SelfReplicationLoss(const at::Tensor& coordinates) {
  return ReplicationLoss(PredictWeights(coordinates), coordinates);
}

at::Tensor QuineModel::ReplicationLoss(const at::Tensor& predictions,
                                       const at::Tensor& coordinates) {
  at::Tensor loss = ReplicationError(predictions, coordinates);
  if (config_.two_step_weight() > 0) {
    loss = loss + config_.two_step_weight() * TwoStepError(coordinates);
  }
  if (config_.jacobian_weight() > 0) {
    loss = loss + config_.jacobian_weight() * JacobianPenalty();
  }
  if (config_.contraction_weight() > 0) {
    loss = loss + ContractionPenalty(coordinates);
  }
  // The step's graph is the loss's now.
  step_print_ = at::Tensor();
  step_reprint_ = at::Tensor();
  return loss;
}

at::Tensor QuineModel::TwoStepError(const at::Tensor& coordinates) {
  const at::Tensor& projection = modules_->coordinate_projection;
  // theta' = f_theta(C), with its gradient: the print's own error is a
  // function of theta through both the print's weights and its targets.
  const at::Tensor printed =
      step_print_.defined() ? step_print_ : PrintOf(modules_->theta);
  // A scaled print's rows need all of the print's raw outputs.
  if (normalizes_print()) step_reprint_ = PrintOf(printed);
  const at::Tensor reprinted =
      normalizes_print() ? step_reprint_.index_select(0, coordinates)
                         : Body(projection.index_select(0, coordinates), 0,
                                layout_.weight_head, printed)
                               .squeeze(1);
  return SquaredError(reprinted, printed.index_select(0, coordinates), printed);
}

at::Tensor QuineModel::JacobianPenalty() {
  const at::Tensor& theta = modules_->theta;
  const at::Tensor printed =
      step_print_.defined() ? step_print_ : PrintOf(theta);
  // At the print: the map's Jacobian at theta' = printed, its graph still
  // reaching theta through theta'.
  const bool at_print = config_.jacobian_at_print();
  const at::Tensor& point = at_print ? printed : theta;
  const at::Tensor print =
      !at_print ? printed
                : (step_reprint_.defined() ? step_reprint_ : PrintOf(printed));
  // From the global generator, whose state the checkpoints carry: a resumed
  // run draws the probes an uninterrupted one would.
  const at::Tensor probe = at::randn_like(print);
  const at::Tensor transposed =
      torch::autograd::grad({print}, {point}, {probe}, /*retain_graph=*/true,
                            /*create_graph=*/true)[0];
  return transposed.pow(2).sum() / static_cast<double>(theta.numel());
}

at::Tensor QuineModel::ReplicationError(const at::Tensor& predictions,
                                        const at::Tensor& coordinates) {
  return SquaredError(predictions,
                      modules_->theta.detach().index_select(0, coordinates),
                      modules_->theta);
}

at::Tensor QuineModel::SquaredError(const at::Tensor& predictions,
                                    const at::Tensor& targets,
                                    const at::Tensor& weights) {
  at::Tensor error = (predictions - targets).pow(2).sum();
  if (config_.sr_loss() != kRelativeSrLoss) return error;
  // Divided by these coordinates' expected share of sum(weights^2) (the
  // whole sum, with its gradient, scaled by their fraction: the sum over a
  // batch of 10 weights alone is too noisy a denominator).
  const double fraction = static_cast<double>(targets.numel()) /
                          static_cast<double>(weights.numel());
  return error / (weights.pow(2).sum() * fraction);
}

at::Tensor QuineModel::PredictAllWeights() {
  // One batch of all rows: a few large matrix products. (Blocks of 1,024
  // rows were no faster on one thread and far slower on two threads of a
  // loaded machine, where every extra parallel region waits for a
  // descheduled thread.)
  TORCH_CHECK(!at::GradMode::is_enabled(), "PredictAllWeights is no-grad only");
  return PrintOf(modules_->theta);
}

ReplicationStats QuineModel::Stats() {
  torch::NoGradGuard no_grad;
  ReplicationStats stats;
  const at::Tensor& theta = modules_->theta;
  stats.sr_loss = (PredictAllWeights() - theta).pow(2).sum().item<double>();
  stats.weight_sq = theta.pow(2).sum().item<double>();
  stats.rho = stats.sr_loss / stats.weight_sq;
  return stats;
}

void QuineModel::Regenerate() {
  torch::NoGradGuard no_grad;
  // All predictions come from the old theta before any of it is overwritten.
  const double damping = config_.regeneration_damping();
  // copy_ at 1, not lerp_: bit for bit the paper's replacement.
  if (damping == 1) {
    modules_->theta.copy_(PredictAllWeights());
  } else {
    modules_->theta.lerp_(PredictAllWeights(), damping);
  }
}

double SpectralRadiusByPowerIteration(
    const std::function<at::Tensor(const at::Tensor&)>& apply, int64_t size,
    int iterations, uint64_t seed, at::Tensor* direction) {
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  at::Tensor v = at::randn({size}, generator, at::kDouble);
  v /= v.norm();
  const int settle = iterations / 2;
  double log_growth = 0;
  for (int i = 0; i < iterations; ++i) {
    at::Tensor next = apply(v.to(at::kFloat)).to(at::kDouble);
    const double growth = next.norm().item<double>();
    if (!(growth > 0)) return 0;  // A v = 0: v is in the null space
    if (i >= settle) log_growth += std::log(growth);
    v = next / growth;
  }
  if (direction != nullptr) *direction = v;
  return std::exp(log_growth / std::max(1, iterations - settle));
}

std::function<at::Tensor(const at::Tensor&)> QuineModel::RegenerationMapProduct(
    double damping) {
  const at::Tensor& theta = modules_->theta;
  torch::AutoGradMode grad_mode(true);
  // J^T u by one backward pass, kept as a graph in u (create_graph), so
  // that differentiating <J^T u, v> in u gives J v.
  const at::Tensor printed = PrintOf(theta);
  const at::Tensor u = at::zeros_like(theta).requires_grad_(true);
  const at::Tensor transposed_product =
      torch::autograd::grad({printed}, {theta}, {u}, /*retain_graph=*/true,
                            /*create_graph=*/true)[0];
  return [transposed_product, u, damping](const at::Tensor& v) {
    torch::AutoGradMode grad_mode(true);
    const at::Tensor jv = torch::autograd::grad({transposed_product}, {u}, {v},
                                                /*retain_graph=*/true)[0];
    return (jv * damping + v * (1 - damping)).detach();
  };
}

double QuineModel::PrintScaleDegree() {
  const at::Tensor theta = modules_->theta.detach();
  const at::Tensor along = RegenerationMapProduct(1)(theta);
  torch::NoGradGuard no_grad;
  const at::Tensor print = PrintOf(theta);
  return (along * print).sum().item<double>() /
         print.pow(2).sum().item<double>();
}

double QuineModel::RegenerationSpectralRadius(int iterations) {
  const at::Tensor& theta = modules_->theta;
  const auto apply = RegenerationMapProduct(config_.regeneration_damping());
  at::Tensor direction;
  const double radius = SpectralRadiusByPowerIteration(
      apply, theta.numel(), iterations, seed_ ^ 0x6a61636f6269ULL,  // "jacobi"
      &direction);
  const int64_t k = config_.contraction_directions();
  if (config_.contraction_weight() <= 0) return radius;
  if (k == 1) {
    KeepContractionDirections(direction.unsqueeze(0));
    return radius;
  }
  // The k most amplified directions: subspace iteration from the dominant
  // one and k - 1 random ones, orthonormalised (QR) after every product.
  at::Generator generator =
      at::make_generator<at::CPUGeneratorImpl>(seed_ ^ 0x626c6f636bULL);
  at::Tensor block = at::randn({theta.numel(), k}, generator, at::kDouble);
  block.select(1, 0).copy_(direction);
  block = std::get<0>(at::linalg_qr(block));
  for (int i = 0; i < iterations; ++i) {
    std::vector<at::Tensor> columns;
    for (int64_t j = 0; j < k; ++j) {
      columns.push_back(
          apply(block.select(1, j).to(at::kFloat)).to(at::kDouble));
    }
    block = std::get<0>(at::linalg_qr(at::stack(columns, 1)));
  }
  KeepContractionDirections(block.t());
  return radius;
}

void QuineModel::KeepContractionDirections(const at::Tensor& newest) {
  const int64_t k = config_.contraction_directions();
  at::Tensor rows = newest.to(at::kDouble);
  if (config_.contraction_previous_directions() &&
      contraction_directions_.defined()) {
    // The previous regeneration's own k (the first rows), orthonormalised
    // together with the newest, which stay first.
    const at::Tensor both = at::cat(
        {rows, contraction_directions_.narrow(0, 0, k).to(at::kDouble)}, 0);
    rows = std::get<0>(at::linalg_qr(both.t())).t();
    // QR keeps the span and the order; the newest rows' signs may flip,
    // which the penalty does not see.
  }
  contraction_directions_ = rows.to(at::kFloat).contiguous();
}

at::Tensor QuineModel::MapProductOnRows(const at::Tensor& coordinates) {
  const at::Tensor& theta = modules_->theta;
  const double damping = config_.regeneration_damping();
  // J_S v with its graph in theta: J_S^T u by a backward pass kept as a
  // graph in u and theta, then differentiated in u (create_graph again, so
  // that the result can be differentiated in theta), once per direction.
  const at::Tensor rows = PredictWeights(coordinates);
  const at::Tensor u = at::zeros_like(rows).requires_grad_(true);
  const at::Tensor transposed = torch::autograd::grad(
      {rows}, {theta}, {u}, /*retain_graph=*/true, /*create_graph=*/true)[0];
  std::vector<at::Tensor> products;
  for (int64_t j = 0; j < contraction_directions_.size(0); ++j) {
    const at::Tensor v = contraction_directions_[j];
    const at::Tensor jv = torch::autograd::grad({transposed}, {u}, {v},
                                                /*retain_graph=*/true,
                                                /*create_graph=*/true)[0];
    products.push_back(jv * damping +
                       v.index_select(0, coordinates) * (1 - damping));
  }
  return at::stack(products, 0);
}

at::Tensor QuineModel::GainsOnRows(const at::Tensor& coordinates) {
  // The rows' share of every direction's product, scaled to all N rows.
  const double scale = std::sqrt(static_cast<double>(num_parameters()) /
                                 static_cast<double>(coordinates.numel()));
  return MapProductOnRows(coordinates).norm(2, {1}) * scale;
}

at::Tensor QuineModel::ContractionPenalty(const at::Tensor& coordinates) {
  if (!contraction_directions_.defined()) {
    return at::zeros({}, modules_->theta.options());
  }
  return ContractionWeightNow() *
         at::relu(GainsOnRows(coordinates) - config_.contraction_target())
             .pow(2)
             .sum();
}

double QuineModel::ContractionWeightNow() const {
  const int64_t ramp = config_.contraction_ramp_epochs();
  const double share =
      ramp > 0 ? std::min(1.0, double(epochs_done_ + 1) / double(ramp)) : 1.0;
  return config_.contraction_weight() * share;
}

at::Tensor QuineModel::ContractionGains(const at::Tensor& coordinates) {
  if (!contraction_directions_.defined()) return at::Tensor();
  torch::AutoGradMode grad_mode(true);
  return GainsOnRows(coordinates).detach().to(at::kDouble);
}

bool QuineModel::RegeneratesAfter(int64_t epoch) const {
  const int64_t every = config_.regenerate_every_epochs();
  return every > 0 && (epoch + 1) % every == 0;
}

absl::StatusOr<std::map<std::string, double>> QuineModel::Evaluate(
    Split /*split*/, const Dataset& data, TrainingContext& training) {
  std::map<std::string, double> metrics;
  if (auxiliary()) {
    ASSIGN_OR_RETURN(metrics, training.StandardEvaluate(data));
  }
  RETURN_IF_ERROR(CallTorch("quine evaluation", [&] {
    ReplicationStats stats = Stats();
    metrics["sr_loss"] = stats.sr_loss;
    metrics["rho"] = stats.rho;
    metrics["weight_sq"] = stats.weight_sq;
  }));
  return metrics;
}

absl::Status QuineModel::OnEpochEnd(int64_t epoch, TrainingContext& training,
                                    std::map<std::string, double>* metrics) {
  RETURN_IF_ERROR(OnEpochEnd(epoch, metrics));
  last_epoch_metrics_ = *metrics;
  if (RegeneratesAfter(epoch)) {
    // Adamax's moments describe the gradients of weights that were just
    // replaced; the new generation starts with a fresh optimizer, as a new
    // network would (see README.md).
    training.optimizer().state().clear();
  }
  return absl::OkStatus();
}

std::vector<FigureSpec> QuineModel::Figures() const {
  FigureSpec figure;
  figure.name = "quine";
  figure.title =
      "self-replication per epoch (before regeneration, and right after)";
  // The last two only with spectral_radius_iterations (a series without
  // values is left out of the figure).
  figure.series = {"model/sr_loss",
                   "model/rho",
                   "model/rho_after_regeneration",
                   "model/weight_sq",
                   "model/regenerated_weight_sq",
                   "model/regeneration_spectral_radius",
                   "model/print_scale_degree"};
  figure.mark_where_present = "model/regenerated_weight_sq";
  figure.mark_label = "regeneration";
  figure.log_scale = true;
  return {figure};
}

std::vector<std::string> QuineModel::SummaryLines() const {
  const auto& metrics = last_epoch_metrics_;
  auto find = [&](const char* name) -> std::optional<double> {
    auto it = metrics.find(name);
    if (it == metrics.end()) return std::nullopt;
    return it->second;
  };
  std::vector<std::string> lines;
  const std::optional<double> rho = find("rho");
  if (!rho) return lines;
  const std::optional<double> after = find("rho_after_regeneration");
  lines.push_back(absl::StrFormat(
      "self-replication after the last epoch: rho %.4g%s, sum(theta^2) %.4g",
      *rho,
      after ? absl::StrFormat(" before its regeneration, %.4g right after it "
                              "(the print scoring its own weights)",
                              *after)
            : std::string(),
      find("weight_sq").value_or(0)));
  if (const std::optional<double> radius =
          find("regeneration_spectral_radius")) {
    lines.push_back(absl::StrFormat(
        "regeneration map: spectral radius %.3g at the print (%s)", *radius,
        *radius < 1 ? "< 1: an attracting fixed point"
                    : ">= 1: not attracting"));
  }
  if (config_.task_only()) {
    lines.push_back(
        "scale: the train loss is the task's cross-entropy alone (task_only); "
        "sr_loss sums L_SR over all weights, rho = sr_loss / sum(theta^2)");
    return lines;
  }
  lines.push_back(absl::StrFormat(
      "scale: the train loss sums L_SR over one step's coordinates%s%s (plus "
      "the configured penalties); sr_loss sums it over all %d weights, and "
      "rho = sr_loss / sum(theta^2)",
      config_.sr_loss() == kRelativeSrLoss
          ? ", divided by their share of sum(theta^2)"
          : "",
      auxiliary() ? ", + task_weight x the task's cross-entropy" : "",
      modules_->theta.numel()));
  return lines;
}

absl::Status QuineModel::OnEpochEnd(int64_t epoch,
                                    std::map<std::string, double>* metrics) {
  epochs_done_ = epoch + 1;
  double weight_sq = 0;
  absl::Status status = CallTorch("quine epoch end", [&] {
    ReplicationStats stats = Stats();
    (*metrics)["sr_loss"] = stats.sr_loss;
    (*metrics)["rho"] = stats.rho;
    (*metrics)["weight_sq"] = stats.weight_sq;
    weight_sq = stats.weight_sq;
    if (RegeneratesAfter(epoch)) {
      Regenerate();
      // Is the print a quine too? The regenerated network against its own
      // weights (#27: within a generation rho can be 1% while the print
      // misses its weights by twice their size).
      const ReplicationStats after = Stats();
      weight_sq = after.weight_sq;
      (*metrics)["regenerated_weight_sq"] = after.weight_sq;
      (*metrics)["sr_loss_after_regeneration"] = after.sr_loss;
      (*metrics)["rho_after_regeneration"] = after.rho;
      if (config_.spectral_radius_iterations() > 0) {
        (*metrics)["regeneration_spectral_radius"] =
            RegenerationSpectralRadius(config_.spectral_radius_iterations());
        (*metrics)["print_scale_degree"] = PrintScaleDegree();
      }
    }
  });
  if (!status.ok()) return status;
  const double floor = config_.zero_quine_fraction() * initial_weight_sq_;
  if (!config_.allow_zero_quine() && !(weight_sq >= floor)) {
    return absl::AbortedError(absl::StrFormat(
        "the quine collapsed to the trivial zero quine after epoch %d: "
        "sum(theta^2) = %g < %g (model_config.zero_quine_fraction %g of its "
        "initial %g), so L_SR is small only because the weights vanished. "
        "Set model_config.allow_zero_quine=true to let a run end this way",
        epoch + 1, weight_sq, floor, config_.zero_quine_fraction(),
        initial_weight_sq_));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Model>> MakeQuine(const ModelContext& context) {
  absl::StatusOr<QuineConfig> config = ParseQuineConfig(*context.config);
  if (!config.ok()) return WithContext(config.status(), context.config_source);
  if (IsAuxiliary(*config) &&
      (context.data.num_classes < 2 || context.data.input_shape.empty())) {
    return absl::InvalidArgumentError(
        "quine: the auxiliary variant needs a dataset with images and at "
        "least 2 classes");
  }
  std::unique_ptr<Model> model;
  absl::Status status = CallTorch("building the quine", [&] {
    model = std::make_unique<QuineModel>(*config, context.data,
                                         context.config->seed());
  });
  if (!status.ok()) return status;
  const auto& quine = static_cast<const QuineModel&>(*model);
  LOG(INFO) << absl::StrFormat(
      "quine: %s, %d parameters, initial sum(theta^2) %.4g", config->variant(),
      quine.num_parameters(), quine.initial_weight_sq());
  return model;
}

OUROBOROS_REGISTER_DATA_SOURCE(
    kCoordinatesDataSource,
    "The coordinates of a vanilla quine's own weights (0 .. N-1, N from "
    "model_config): its training, validation and test set",
    MakeCoordinateSplits, ValidateCoordinateSource,
    SectionDefaultsOf<QuineCoordinatesConfig>());

OUROBOROS_REGISTER_MODEL(
    "quine",
    "Neural network quine (vanilla or auxiliary) that "
    "predicts and regenerates its own weights",
    MakeQuine, kDefaultConfigJson, ValidateQuineConfig,
    SectionDefaultsOf<QuineConfig>(FillDerivedQuineDefaults));

}  // namespace ouroboros::quine
