#include "plugins/quine/quine.h"

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/optim/adam.h>
#include <torch/utils.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ouroboros/api/data.h"
#include "ouroboros/api/registry.h"
#include "ouroboros/base/json.h"
#include "ouroboros/config/config.h"
#include "ouroboros/train/resume_check.h"
#include "ouroboros/train/trainer.h"
#include "plugins/quine/default_config.h"

namespace ouroboros::quine {
namespace {

RunConfig ConfigWith(
    const std::string& model_config_json,
    const std::string& run_config_json = R"({"epochs": 1, "batch_size": 3})") {
  std::string json = R"({"model": "quine", "pipeline": "train",
    "seed": 7,
    "data_config": {"dataset": "synthetic", "synthetic":
      {"num_samples": 64, "num_features": 5, "num_classes": 3}},
    "optim_config": {"name": "adam", "lr": 0.01},
    "run_config": )" +
                     run_config_json + R"(, "model_config": )" +
                     model_config_json + "}";
  absl::StatusOr<RunConfig> config = ParseRunConfig(json, "test.json");
  EXPECT_TRUE(config.ok()) << config.status();
  return *config;
}

std::unique_ptr<QuineModel> MakeModel(const RunConfig& config,
                                      const DataSpec& data = DataSpec{{5}, 3}) {
  absl::StatusOr<QuineConfig> parsed = ParseQuineConfig(config);
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  return std::make_unique<QuineModel>(*parsed, data, config.seed());
}

at::Tensor Buffer(QuineModel& model, const std::string& name) {
  return model.module().named_buffers()[name];
}

double Selu(double x) {
  constexpr double kAlpha = 1.6732632423543772848170429916717;
  constexpr double kScale = 1.0507009873554804934193349852946;
  return kScale * (x > 0 ? x : kAlpha * (std::exp(x) - 1));
}

// A 6-parameter quine with every number chosen by hand: a 2x2 SELU layer
// (theta[0..3]) and a 1x2 weight head (theta[4..5]) over a 6x2 projection.
class TinyQuineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = ConfigWith(R"({"coordinate_embedding": 2, "hidden_sizes": [2]})");
    model_ = MakeModel(config_);
    ASSERT_EQ(model_->num_parameters(), 6);
    torch::NoGradGuard no_grad;
    model_->weights().copy_(
        at::tensor(std::vector<float>(theta_.begin(), theta_.end())));
    Buffer(*model_, "coordinate_projection")
        .copy_(at::tensor(
                   std::vector<float>(projection_.begin(), projection_.end()))
                   .view({6, 2}));
  }

  // f(c) = head . selu(W1 P[c]), in doubles.
  double Predict(int c) const {
    double sum = 0;
    for (int row = 0; row < 2; ++row) {
      double pre = theta_[row * 2] * projection_[c * 2] +
                   theta_[row * 2 + 1] * projection_[c * 2 + 1];
      sum += theta_[4 + row] * Selu(pre);
    }
    return sum;
  }
  double Hidden(int c, int row) const {
    return Selu(theta_[row * 2] * projection_[c * 2] +
                theta_[row * 2 + 1] * projection_[c * 2 + 1]);
  }

  std::vector<double> theta_ = {0.5, -1.0, 2.0, 0.25, 0.75, -0.5};
  std::vector<double> projection_ = {1.0, 0.0,  0.0, 1.0,  -1.0,  2.0,
                                     0.5, -0.5, 3.0, -2.0, -0.25, 0.1};
  RunConfig config_;
  std::unique_ptr<QuineModel> model_;
};

TEST_F(TinyQuineTest, SelfReplicationLossEqualsTheHandComputedSum) {
  const std::vector<int64_t> coordinates = {0, 3, 5};
  double expected = 0;
  for (int64_t c : coordinates) {
    expected += std::pow(Predict(c) - theta_[c], 2);
  }
  at::Tensor loss = model_->SelfReplicationLoss(at::tensor(coordinates));
  EXPECT_NEAR(loss.item<double>(), expected, 1e-5 * expected);
  // The training step's view: Forward on the quine_coordinates data
  // source's int64 inputs, then Loss against the coordinates.
  at::Tensor as_inputs = at::tensor(coordinates).unsqueeze(1);
  EXPECT_NEAR(model_->Loss(model_->Forward(as_inputs), at::tensor(coordinates))
                  .item<double>(),
              expected, 1e-5 * expected);

  double all = 0, weight_sq = 0;
  for (int c = 0; c < 6; ++c) {
    all += std::pow(Predict(c) - theta_[c], 2);
    weight_sq += theta_[c] * theta_[c];
  }
  ReplicationStats stats = model_->Stats();
  EXPECT_NEAR(stats.sr_loss, all, 1e-5 * all);
  EXPECT_NEAR(stats.weight_sq, weight_sq, 1e-6);
  EXPECT_NEAR(stats.rho, all / weight_sq, 1e-5 * all / weight_sq);
}

TEST_F(TinyQuineTest, GradientsDoNotFlowIntoTheTargets) {
  // With the weight head at zero, f(c) = 0 for every c, and f does not
  // depend on the first layer. Detached targets theta_c then give the first
  // layer no gradient at all; attached ones would give it 2 * theta_c.
  theta_[4] = theta_[5] = 0;
  {
    torch::NoGradGuard no_grad;
    model_->weights().narrow(0, 4, 2).zero_();
  }
  const std::vector<int64_t> coordinates = {0, 1, 2, 3, 4, 5};
  model_->SelfReplicationLoss(at::tensor(coordinates)).backward();
  at::Tensor grad = model_->weights().grad();
  ASSERT_TRUE(grad.defined());
  for (int i = 0; i < 4; ++i) EXPECT_EQ(grad[i].item<float>(), 0) << i;
  // d/d head_row of sum_c (f(c) - theta_c)^2 = sum_c 2 (0 - theta_c) h_row(c).
  for (int row = 0; row < 2; ++row) {
    double expected = 0;
    for (int c = 0; c < 6; ++c) expected += -2 * theta_[c] * Hidden(c, row);
    EXPECT_NEAR(grad[4 + row].item<double>(), expected, 1e-4) << row;
  }
}

TEST_F(TinyQuineTest, RegenerationWritesThePredictionsIntoTheLiveParameter) {
  std::vector<double> expected(6);
  for (int c = 0; c < 6; ++c) expected[c] = Predict(c);
  at::Tensor live = model_->module().parameters()[0];
  torch::optim::Adam adam(model_->module().parameters(), 0.1);
  const void* storage = live.data_ptr();

  model_->Regenerate();

  // The same tensor the module and the optimizer hold, now f_theta_old(C).
  EXPECT_EQ(model_->module().parameters()[0].data_ptr(), storage);
  EXPECT_TRUE(adam.param_groups()[0].params()[0].is_same(live));
  for (int c = 0; c < 6; ++c) {
    EXPECT_NEAR(live[c].item<double>(), expected[c], 1e-5) << c;
  }
  EXPECT_TRUE(live.requires_grad());
}

// The tiny quine's weights and projection, with other model_config fields.
std::unique_ptr<QuineModel> CopyWithConfig(QuineModel& tiny,
                                           const std::string& section) {
  std::unique_ptr<QuineModel> copy = MakeModel(ConfigWith(section));
  torch::NoGradGuard no_grad;
  copy->weights().copy_(tiny.weights());
  Buffer(*copy, "coordinate_projection")
      .copy_(Buffer(tiny, "coordinate_projection"));
  return copy;
}

TEST_F(TinyQuineTest, RelativeLossDividesByTheBatchsShareOfAllWeights) {
  std::unique_ptr<QuineModel> relative = CopyWithConfig(
      *model_,
      R"({"coordinate_embedding": 2, "hidden_sizes": [2], "sr_loss": "relative"})");
  const std::vector<int64_t> coordinates = {0, 3, 5};
  double error = 0, weight_sq = 0;
  for (int64_t c : coordinates) error += std::pow(Predict(c) - theta_[c], 2);
  for (double w : theta_) weight_sq += w * w;
  const double expected = error / (weight_sq * 3.0 / 6.0);
  at::Tensor loss = relative->SelfReplicationLoss(at::tensor(coordinates));
  EXPECT_NEAR(loss.item<double>(), expected, 1e-5 * expected);
  // The denominator keeps its gradient: shrinking theta raises the loss, so
  // a weight that no prediction of the batch uses still gets pushed outward
  // (d/d theta_1 of error / (s * frac) is -loss * 2 theta_1 / s, plus the
  // numerator's share through the first layer).
  loss.backward();
  at::Tensor grad = relative->weights().grad();
  ASSERT_TRUE(grad.defined());
  EXPECT_TRUE(at::isfinite(grad).all().item<bool>());
  EXPECT_GT(grad.abs().sum().item<double>(), 0);
}

TEST_F(TinyQuineTest, DampedRegenerationMovesPartWayToThePredictions) {
  std::unique_ptr<QuineModel> damped = CopyWithConfig(
      *model_,
      R"({"coordinate_embedding": 2, "hidden_sizes": [2], "regeneration_damping": 0.25})");
  damped->Regenerate();
  for (int c = 0; c < 6; ++c) {
    EXPECT_NEAR(damped->weights()[c].item<double>(),
                0.75 * theta_[c] + 0.25 * Predict(c), 1e-5)
        << c;
  }
}

// print_normalization: the print of every coordinate scaled so that its
// squares sum to the initial sum(theta^2), against the hand-computed f(c);
// the loss and the regeneration use the scaled print.
TEST_F(TinyQuineTest, ScaledPrintHasTheInitialNorm) {
  std::unique_ptr<QuineModel> scaled =
      CopyWithConfig(*model_,
                     R"({"coordinate_embedding": 2, "hidden_sizes": [2],
          "print_normalization": "initial_norm"})");
  double raw_sq = 0;
  for (int c = 0; c < 6; ++c) raw_sq += Predict(c) * Predict(c);
  const double scale = std::sqrt(scaled->initial_weight_sq() / raw_sq);
  const std::vector<int64_t> coordinates = {0, 3, 5};
  const at::Tensor predicted = scaled->PredictWeights(at::tensor(coordinates));
  double error = 0;
  for (size_t i = 0; i < coordinates.size(); ++i) {
    const int c = static_cast<int>(coordinates[i]);
    EXPECT_NEAR(predicted[i].item<double>(), scale * Predict(c), 1e-5) << c;
    error += std::pow(scale * Predict(c) - theta_[c], 2);
  }
  const at::Tensor loss = scaled->SelfReplicationLoss(at::tensor(coordinates));
  EXPECT_NEAR(loss.item<double>(), error, 1e-5 * error);
  loss.backward();
  EXPECT_GT(scaled->weights().grad().abs().sum().item<double>(), 0);
  scaled->Regenerate();
  for (int c = 0; c < 6; ++c) {
    EXPECT_NEAR(scaled->weights()[c].item<double>(), scale * Predict(c), 1e-5)
        << c;
  }
  EXPECT_NEAR(scaled->weights().pow(2).sum().item<double>(),
              scaled->initial_weight_sq(), 1e-5 * scaled->initial_weight_sq());
}

// per_matrix: each matrix's print (the 2x2 layer, theta[0..3]; the head,
// theta[4..5]) centred and scaled to that matrix's centred sum of squares
// at initialization, against the hand-computed f(c).
TEST_F(TinyQuineTest, PerMatrixPrintIsCentredAndScaledMatrixByMatrix) {
  const std::string section =
      R"({"coordinate_embedding": 2, "hidden_sizes": [2],
          "print_normalization": "per_matrix"})";
  std::vector<double> initial(6);
  {
    std::unique_ptr<QuineModel> fresh = MakeModel(ConfigWith(section));
    for (int c = 0; c < 6; ++c) initial[c] = fresh->weights()[c].item<double>();
  }
  std::unique_ptr<QuineModel> scaled = CopyWithConfig(*model_, section);
  std::vector<double> expected(6);
  for (const auto& [begin, end] : {std::pair{0, 4}, std::pair{4, 6}}) {
    double print_mean = 0, initial_mean = 0;
    for (int c = begin; c < end; ++c) {
      print_mean += Predict(c) / (end - begin);
      initial_mean += initial[c] / (end - begin);
    }
    double print_sq = 0, initial_sq = 0;
    for (int c = begin; c < end; ++c) {
      print_sq += std::pow(Predict(c) - print_mean, 2);
      initial_sq += std::pow(initial[c] - initial_mean, 2);
    }
    for (int c = begin; c < end; ++c) {
      expected[c] =
          (Predict(c) - print_mean) * std::sqrt(initial_sq / print_sq);
    }
  }
  const at::Tensor predicted = scaled->PredictWeights(at::arange(6));
  for (int c = 0; c < 6; ++c) {
    EXPECT_NEAR(predicted[c].item<double>(), expected[c], 1e-5) << c;
  }
  scaled->Regenerate();
  for (int c = 0; c < 6; ++c) {
    EXPECT_NEAR(scaled->weights()[c].item<double>(), expected[c], 1e-5) << c;
  }
}

// The print's degree in the weights' scale, <J theta, f> / |f|^2: against
// central differences of the print along theta; and, with activations so
// small that SELU is piecewise linear (so f is homogeneous of degree 3 in
// theta), 3 for the raw print and 0 for the scaled one, whatever the
// weights.
TEST(QuineTest, PrintScaleDegreeIsTheDegreeOfTheMapAlongTheta) {
  for (const std::string normalization :
       {"none", "initial_norm", "per_matrix"}) {
    SCOPED_TRACE(normalization);
    std::unique_ptr<QuineModel> model = MakeModel(
        ConfigWith(R"({"hidden_sizes": [4], "print_normalization": ")" +
                   normalization + R"("})"));
    double by_differences = 0;
    {
      torch::NoGradGuard no_grad;
      const at::Tensor theta = model->weights().clone();
      const at::Tensor print = model->PrintOf(theta).to(at::kDouble);
      const double h = 1e-3;
      const at::Tensor up = model->PrintOf(theta * (1 + h)).to(at::kDouble);
      const at::Tensor down = model->PrintOf(theta * (1 - h)).to(at::kDouble);
      by_differences = ((up - down) / (2 * h) * print).sum().item<double>() /
                       print.pow(2).sum().item<double>();
    }
    EXPECT_NEAR(model->PrintScaleDegree(), by_differences,
                0.02 * std::abs(by_differences) + 1e-3);
  }
  for (const auto& [normalization, expected] :
       {std::make_pair("none", 3.0), std::make_pair("initial_norm", 0.0),
        std::make_pair("per_matrix", 0.0)}) {
    SCOPED_TRACE(normalization);
    std::unique_ptr<QuineModel> model = MakeModel(ConfigWith(absl::StrCat(
        R"({"hidden_sizes": [4, 4], "coordinate_projection_std": 1e-5,
            "print_normalization": ")",
        normalization, R"("})")));
    EXPECT_NEAR(model->PrintScaleDegree(), expected, 0.01);
  }
}

TEST(QuineTest, PaperSizes) {
  RunConfig vanilla = ConfigWith("{}");
  EXPECT_EQ(MakeModel(vanilla)->num_parameters(), 20100);
  RunConfig auxiliary =
      ConfigWith(R"({"variant": "auxiliary", "task_weight": 0.01})");
  EXPECT_EQ(MakeModel(auxiliary, DataSpec{{1, 28, 28}, 10})->num_parameters(),
            21100);
}

TEST(QuineTest, DefaultConfigIsTheVanillaPaperQuine) {
  absl::StatusOr<RunConfig> config =
      ParseRunConfig(kDefaultConfigJson, "default_config.json");
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_TRUE(ValidateQuineConfig(*config).ok());
  ModelContext context{&*config, "default_config.json", DataSpec{{1}, 0}};
  absl::StatusOr<std::unique_ptr<Model>> model = MakeQuine(context);
  ASSERT_TRUE(model.ok()) << model.status();
  auto& quine = dynamic_cast<QuineModel&>(**model);
  EXPECT_EQ(quine.num_parameters(), 20100);
  // Only theta is trainable: the projection is a buffer.
  EXPECT_EQ(quine.module().parameters().size(), 1u);
}

TEST(QuineTest, AuxiliaryForwardGivesClassLogitsFromTheImageAlone) {
  RunConfig config = ConfigWith(
      R"({"variant": "auxiliary", "task_weight": 0.5, "hidden_sizes": [8]})");
  std::unique_ptr<QuineModel> model = MakeModel(config, DataSpec{{2, 3}, 4});
  at::Tensor images = at::rand({5, 2, 3});
  at::Tensor logits = model->Forward(images);
  EXPECT_EQ(logits.sizes(), (at::IntArrayRef{5, 4}));
  // Changing the coordinate projection must not change the class logits.
  {
    torch::NoGradGuard no_grad;
    Buffer(*model, "coordinate_projection").normal_();
  }
  EXPECT_TRUE(at::allclose(model->Forward(images), logits));
}

TEST(QuineTest, AuxiliaryStepLossIsReplicationPlusWeightedTask) {
  RunConfig config = ConfigWith(
      R"({"variant": "auxiliary", "task_weight": 0.25, "hidden_sizes": [8]})");
  std::unique_ptr<QuineModel> model = MakeModel(config, DataSpec{{2, 3}, 4});
  at::Tensor images = at::rand({5, 2, 3});
  at::Tensor labels = at::tensor(std::vector<int64_t>{0, 1, 2, 3, 1});
  at::Tensor logits = model->Forward(images);
  // coordinates_per_step 0: the L_SR term covers every coordinate.
  const double sr = model->Stats().sr_loss;
  const double task =
      at::nll_loss(at::log_softmax(logits, 1), labels).item<double>();
  EXPECT_NEAR(model->Loss(logits, labels).item<double>(), sr + 0.25 * task,
              1e-4 * sr);
}

// print_task_weight: the step's loss adds mu * the task loss of the print
// theta' = f_theta(C) on the same images (a second model holding the print
// classifies them by hand), with the raw and the scaled print.
TEST(QuineTest, AuxiliaryStepLossAddsThePrintsTaskLoss) {
  for (const std::string normalization : {"none", "initial_norm"}) {
    SCOPED_TRACE(normalization);
    RunConfig config = ConfigWith(
        R"({"variant": "auxiliary", "task_weight": 0.25, "hidden_sizes": [8],
            "print_task_weight": 0.5, "print_normalization": ")" +
        normalization + R"("})");
    std::unique_ptr<QuineModel> model = MakeModel(config, DataSpec{{2, 3}, 4});
    std::unique_ptr<QuineModel> print = MakeModel(config, DataSpec{{2, 3}, 4});
    const at::Tensor images = at::rand({5, 2, 3});
    const at::Tensor labels = at::tensor(std::vector<int64_t>{0, 1, 2, 3, 1});
    double sr = 0, print_task = 0;
    {
      torch::NoGradGuard no_grad;
      sr = model->Stats().sr_loss;
      print->weights().copy_(print->PrintOf(print->weights()));
      print_task =
          at::nll_loss(at::log_softmax(print->Forward(images), 1), labels)
              .item<double>();
    }
    const at::Tensor logits = model->Forward(images);
    const double task =
        at::nll_loss(at::log_softmax(logits, 1), labels).item<double>();
    const at::Tensor loss = model->Loss(logits, labels);
    EXPECT_NEAR(loss.item<double>(), sr + 0.25 * task + 0.5 * print_task,
                1e-4 * (sr + task + print_task));
    loss.backward();
    EXPECT_GT(model->weights().grad().abs().sum().item<double>(), 0);
  }
}

TEST(QuineTest, ZeroQuineGuardFires) {
  RunConfig config = ConfigWith(R"({"hidden_sizes": [4]})");
  std::unique_ptr<QuineModel> model = MakeModel(config);
  std::map<std::string, double> metrics;
  ASSERT_TRUE(model->OnEpochEnd(0, &metrics).ok());
  EXPECT_GT(metrics.at("weight_sq"), 0);
  {
    torch::NoGradGuard no_grad;
    model->weights().mul_(1e-3);  // sum(theta^2) shrinks by 1e-6
  }
  absl::Status status = model->OnEpochEnd(1, &metrics);
  EXPECT_EQ(status.code(), absl::StatusCode::kAborted);
  EXPECT_NE(status.message().find("trivial zero quine after epoch 2"),
            std::string::npos)
      << status;

  RunConfig allowed =
      ConfigWith(R"({"hidden_sizes": [4], "allow_zero_quine": true})");
  std::unique_ptr<QuineModel> tolerant = MakeModel(allowed);
  {
    torch::NoGradGuard no_grad;
    tolerant->weights().zero_();
  }
  EXPECT_TRUE(tolerant->OnEpochEnd(0, &metrics).ok());
  EXPECT_EQ(metrics.at("weight_sq"), 0);
}

// After a regeneration the epoch records how well the printed network
// prints itself: rho_after_regeneration is L_SR / sum(theta^2) of
// theta' = f_theta(C), against the same regeneration done by hand.
TEST(QuineTest, RecordsRhoRightAfterRegeneration) {
  const RunConfig config =
      ConfigWith(R"({"hidden_sizes": [4], "regenerate_every_epochs": 1})");
  std::unique_ptr<QuineModel> model = MakeModel(config);
  std::unique_ptr<QuineModel> by_hand = MakeModel(config);
  std::map<std::string, double> metrics;
  ASSERT_TRUE(model->OnEpochEnd(0, &metrics).ok());

  torch::NoGradGuard no_grad;
  const at::Tensor all = at::arange(by_hand->num_parameters(), at::kLong);
  const at::Tensor printed = by_hand->PredictWeights(all).reshape({-1});
  by_hand->weights().copy_(printed);
  const at::Tensor reprinted = by_hand->PredictWeights(all).reshape({-1});
  const double sr_loss = (reprinted - printed).pow(2).sum().item<double>();
  const double weight_sq = printed.pow(2).sum().item<double>();
  EXPECT_NEAR(metrics.at("sr_loss_after_regeneration"), sr_loss,
              1e-5 * sr_loss);
  EXPECT_NEAR(metrics.at("regenerated_weight_sq"), weight_sq, 1e-5 * weight_sq);
  EXPECT_NEAR(metrics.at("rho_after_regeneration"), sr_loss / weight_sq,
              1e-5 * sr_loss / weight_sq);
  // Before the regeneration, the original network's numbers.
  EXPECT_NE(metrics.at("rho"), metrics.at("rho_after_regeneration"));
}

// Power iteration on maps whose spectrum is known: a diagonal one (radius
// 0.9), and one whose largest eigenvalues are a complex pair of modulus 0.8
// (a scaled rotation beside 0.5 and -0.3), where a Rayleigh quotient would
// oscillate.
TEST(SpectralRadiusTest, MatchesKnownSpectra) {
  const at::Tensor diagonal = at::tensor({0.9f, 0.5f, 0.3f, -0.2f, 0.1f});
  const double diagonal_radius = SpectralRadiusByPowerIteration(
      [&](const at::Tensor& v) { return diagonal * v; }, 5, 200, 3);
  EXPECT_NEAR(diagonal_radius, 0.9, 0.01);

  const double angle = 0.7;
  at::Tensor rotation = at::zeros({4, 4});
  rotation[0][0] = 0.8 * std::cos(angle);
  rotation[0][1] = -0.8 * std::sin(angle);
  rotation[1][0] = 0.8 * std::sin(angle);
  rotation[1][1] = 0.8 * std::cos(angle);
  rotation[2][2] = 0.5;
  rotation[3][3] = -0.3;
  const double rotation_radius = SpectralRadiusByPowerIteration(
      [&](const at::Tensor& v) { return at::mv(rotation, v); }, 4, 200, 4);
  EXPECT_NEAR(rotation_radius, 0.8, 0.01);
}

// The regeneration map's Jacobian-vector products against finite
// differences of f_theta(C), through the radius of a tiny quine whose map
// is one matrix: with damping a the radius of (1 - a) I + a J.
TEST(SpectralRadiusTest, RegenerationJacobianOfATinyQuine) {
  const RunConfig config = ConfigWith(
      R"({"hidden_sizes": [3], "coordinate_embedding": 4,
          "regenerate_every_epochs": 1})");
  std::unique_ptr<QuineModel> model = MakeModel(config);
  const int64_t n = model->num_parameters();
  // The Jacobian by central differences, column by column.
  at::Tensor jacobian = at::zeros({n, n}, at::kDouble);
  {
    torch::NoGradGuard no_grad;
    const at::Tensor all = at::arange(n, at::kLong);
    const at::Tensor theta = model->weights().clone();
    const double h = 1e-3;
    for (int64_t c = 0; c < n; ++c) {
      model->weights().copy_(theta);
      model->weights()[c] += h;
      const at::Tensor up = model->PredictWeights(all).to(at::kDouble);
      model->weights().copy_(theta);
      model->weights()[c] -= h;
      const at::Tensor down = model->PredictWeights(all).to(at::kDouble);
      jacobian.select(1, c).copy_((up - down) / (2 * h));
    }
    model->weights().copy_(theta);
  }
  const double expected =
      at::linalg_eigvals(jacobian).abs().max().item<double>();
  EXPECT_NEAR(model->RegenerationSpectralRadius(400), expected,
              0.02 * expected);
}

// The contraction penalty: the damped map's gains along the directions the
// regeneration's iteration found (the dominant one; with k = 3 the three
// most amplified, orthonormal), on a subset of the rows scaled to all of
// them, against central differences of f_theta(C); no penalty before the
// directions exist; the gradient reaches theta.
TEST(QuineTest, ContractionPenaltyIsTheMapsGainAlongItsDirections) {
  for (const int k : {1, 3}) {
    SCOPED_TRACE(k);
    const RunConfig config = ConfigWith(absl::StrCat(
        R"({"hidden_sizes": [3], "coordinate_embedding": 4,
            "regeneration_damping": 0.6, "spectral_radius_iterations": 50,
            "contraction_weight": 2, "contraction_target": 0.05,
            "contraction_directions": )",
        k, "}"));
    std::unique_ptr<QuineModel> model = MakeModel(config);
    const int64_t n = model->num_parameters();
    const at::Tensor rows = at::arange(0, n, 3, at::kLong);
    EXPECT_EQ(model->ContractionPenalty(rows).item<double>(), 0);
    EXPECT_FALSE(model->ContractionGains(rows).defined());
    model->RegenerationSpectralRadius(50);
    const at::Tensor directions =
        model->contraction_directions().to(at::kDouble);
    ASSERT_EQ(directions.size(0), k);
    ASSERT_EQ(directions.size(1), n);
    EXPECT_TRUE(at::allclose(directions.mm(directions.t()),
                             at::eye(k, at::kDouble), 1e-5, 1e-5));
    const at::Tensor gains = model->ContractionGains(rows);
    double expected_penalty = 0;
    for (int64_t j = 0; j < k; ++j) {
      const at::Tensor v = directions[j];
      // J v by central differences along v itself.
      at::Tensor jv;
      {
        torch::NoGradGuard no_grad;
        const at::Tensor all = at::arange(n, at::kLong);
        const at::Tensor theta = model->weights().clone();
        const double h = 1e-3;
        model->weights().copy_(theta + h * v.to(at::kFloat));
        const at::Tensor up = model->PredictWeights(all).to(at::kDouble);
        model->weights().copy_(theta - h * v.to(at::kFloat));
        const at::Tensor down = model->PredictWeights(all).to(at::kDouble);
        model->weights().copy_(theta);
        jv = (up - down) / (2 * h);
      }
      const at::Tensor map_v = 0.6 * jv + 0.4 * v;
      const double expected_gain =
          map_v.index_select(0, rows).norm().item<double>() *
          std::sqrt(double(n) / rows.numel());
      EXPECT_NEAR(gains[j].item<double>(), expected_gain, 1e-3 * expected_gain);
      // A target below every gain, so that the penalty is on.
      ASSERT_GT(expected_gain, 0.05);
      expected_penalty += 2 * std::pow(expected_gain - 0.05, 2);
    }
    const at::Tensor penalty = model->ContractionPenalty(rows);
    EXPECT_NEAR(penalty.item<double>(), expected_penalty,
                1e-2 * expected_penalty);
    penalty.backward();
    ASSERT_TRUE(model->weights().grad().defined());
    EXPECT_GT(model->weights().grad().abs().sum().item<double>(), 0);
  }
}

// With contraction_ramp_epochs R the penalty's weight is (e + 1) / R of
// contraction_weight in epoch e (0-based), then all of it; the count of
// epochs travels in the checkpoint.
TEST(QuineTest, ContractionPenaltyRampsOverItsEpochs) {
  const RunConfig config = ConfigWith(
      R"({"hidden_sizes": [3], "coordinate_embedding": 4,
          "regenerate_every_epochs": 1, "spectral_radius_iterations": 20,
          "contraction_weight": 2, "contraction_target": 0.05,
          "contraction_ramp_epochs": 4, "allow_zero_quine": true})");
  std::unique_ptr<QuineModel> model = MakeModel(config);
  const at::Tensor rows = at::arange(0, model->num_parameters(), 2, at::kLong);
  std::map<std::string, double> metrics;
  // Epoch 0 ends: a regeneration finds the directions; epoch 1 runs at 2/4.
  // (An untrained quine regenerated five times shrinks: allowed here.)
  ASSERT_TRUE(model->OnEpochEnd(0, &metrics).ok());
  const double full = 2 * (model->ContractionGains(rows) - 0.05)
                              .clamp_min(0)
                              .pow(2)
                              .sum()
                              .item<double>();
  ASSERT_GT(full, 0);
  EXPECT_NEAR(model->ContractionPenalty(rows).item<double>(), full * 2 / 4,
              1e-6 * full);
  ComponentState state;
  ASSERT_TRUE(model->SaveState(&state).ok());
  EXPECT_EQ(*state.GetInt("epochs_done"), 1);
  const at::Tensor saved_weights = model->weights().detach().clone();
  for (int64_t epoch = 1; epoch < 5; ++epoch) {
    ASSERT_TRUE(model->OnEpochEnd(epoch, &metrics).ok());
  }
  const double full_now = 2 * (model->ContractionGains(rows) - 0.05)
                                  .clamp_min(0)
                                  .pow(2)
                                  .sum()
                                  .item<double>();
  EXPECT_NEAR(model->ContractionPenalty(rows).item<double>(), full_now,
              1e-6 * full_now + 1e-12);
  // A resumed model: the weights from the checkpoint's tensors, the
  // directions and the epoch count from its state.
  std::unique_ptr<QuineModel> resumed = MakeModel(config);
  {
    torch::NoGradGuard no_grad;
    resumed->weights().copy_(saved_weights);
  }
  ASSERT_TRUE(resumed->LoadState(state).ok());
  EXPECT_NEAR(resumed->ContractionPenalty(rows).item<double>(), full * 2 / 4,
              1e-6 * full);
}

// With contraction_previous_directions the penalty holds 2k orthonormal
// directions after the second regeneration: the newest k first, then what
// the previous regeneration found.
TEST(QuineTest, PreviousDirectionsAreHeldDownToo) {
  const RunConfig config = ConfigWith(
      R"({"hidden_sizes": [3], "coordinate_embedding": 4,
          "spectral_radius_iterations": 20, "contraction_weight": 1,
          "contraction_directions": 2,
          "contraction_previous_directions": true})");
  std::unique_ptr<QuineModel> model = MakeModel(config);
  model->RegenerationSpectralRadius(20);
  ASSERT_EQ(model->contraction_directions().size(0), 2);
  const at::Tensor first = model->contraction_directions().to(at::kDouble);
  {
    torch::NoGradGuard no_grad;
    model->weights().mul_(1.3);  // another theta, other directions
  }
  model->RegenerationSpectralRadius(20);
  const at::Tensor all = model->contraction_directions().to(at::kDouble);
  ASSERT_EQ(all.size(0), 4);
  EXPECT_TRUE(
      at::allclose(all.mm(all.t()), at::eye(4, at::kDouble), 1e-5, 1e-5));
  // The first regeneration's directions lie in the span of the four.
  const at::Tensor projected = first.mm(all.t()).mm(all);
  EXPECT_TRUE(at::allclose(projected, first, 1e-4, 1e-4));
  ComponentState state;
  ASSERT_TRUE(model->SaveState(&state).ok());
  EXPECT_TRUE(MakeModel(config)->LoadState(state).ok());
}

// The directions travel in the checkpoint's component state.
TEST(QuineTest, ContractionDirectionsAreSavedAndRestored) {
  const RunConfig config = ConfigWith(
      R"({"hidden_sizes": [3], "coordinate_embedding": 4,
          "spectral_radius_iterations": 10, "contraction_weight": 1,
          "contraction_directions": 2})");
  std::unique_ptr<QuineModel> model = MakeModel(config);
  model->RegenerationSpectralRadius(10);
  ComponentState state;
  ASSERT_TRUE(model->SaveState(&state).ok());
  std::unique_ptr<QuineModel> resumed = MakeModel(config);
  ASSERT_TRUE(resumed->LoadState(state).ok());
  EXPECT_TRUE(at::equal(resumed->contraction_directions(),
                        model->contraction_directions()));
  // Another k than the checkpoint's is refused.
  std::unique_ptr<QuineModel> other = MakeModel(ConfigWith(
      R"({"hidden_sizes": [3], "coordinate_embedding": 4,
          "spectral_radius_iterations": 10, "contraction_weight": 1})"));
  EXPECT_THAT(std::string(other->LoadState(state).message()),
              ::testing::HasSubstr("contraction_directions is not 1 x"));
}

// The two-step loss: a step's loss is L_SR + w * the print's own error,
// against the print computed by hand in a second model (theta <- f(C),
// then its error on the step's coordinates), absolute and relative; the
// gradient reaches theta through the print.
// With print_normalization the print and its own print are both scaled
// (PredictWeights is checked against hand-computed values above).
TEST(QuineTest, TwoStepLossIsThePrintsOwnError) {
  for (const auto& [sr_loss, normalization] :
       {std::pair<std::string, std::string>{"absolute", "none"},
        {"relative", "none"},
        {"absolute", "initial_norm"},
        {"relative", "initial_norm"},
        {"relative", "per_matrix"}}) {
    SCOPED_TRACE(normalization);
    const RunConfig config = ConfigWith(
        R"({"hidden_sizes": [4], "two_step_weight": 0.5, "sr_loss": ")" +
        sr_loss + R"(", "print_normalization": ")" + normalization + R"("})");
    std::unique_ptr<QuineModel> model = MakeModel(config);
    std::unique_ptr<QuineModel> print = MakeModel(config);
    const int64_t n = model->num_parameters();
    const at::Tensor batch = at::tensor({3, 0, 7}, at::kLong);
    double one_step = 0;
    double two_step = 0;
    {
      torch::NoGradGuard no_grad;
      const at::Tensor theta = model->weights();
      const double scale =
          sr_loss == "relative" ? theta.pow(2).sum().item<double>() * 3 / n : 1;
      one_step = (model->PredictWeights(batch) - theta.index_select(0, batch))
                     .pow(2)
                     .sum()
                     .item<double>() /
                 scale;
      const at::Tensor printed = print->PredictWeights(at::arange(n));
      print->weights().copy_(printed);
      const double print_scale =
          sr_loss == "relative" ? printed.pow(2).sum().item<double>() * 3 / n
                                : 1;
      two_step = (print->PredictWeights(batch) - printed.index_select(0, batch))
                     .pow(2)
                     .sum()
                     .item<double>() /
                 print_scale;
    }
    const at::Tensor loss = model->Loss(model->Forward(batch), batch);
    EXPECT_NEAR(loss.item<double>(), one_step + 0.5 * two_step,
                1e-4 * (one_step + two_step))
        << sr_loss;
    loss.backward();
    EXPECT_GT(model->weights().grad().abs().sum().item<double>(), 0);
  }
  EXPECT_FALSE(ParseQuineConfig(ConfigWith(R"({"two_step_weight": -1})")).ok());
}

// The Jacobian of theta -> PrintOf(theta) at `point` by central
// differences, column by column (float64).
at::Tensor PrintJacobianByDifferences(QuineModel& model,
                                      const at::Tensor& point) {
  torch::NoGradGuard no_grad;
  const int64_t n = point.numel();
  at::Tensor jacobian = at::zeros({n, n}, at::kDouble);
  const double h = 1e-3;
  for (int64_t c = 0; c < n; ++c) {
    at::Tensor up = point.clone(), down = point.clone();
    up[c] += h;
    down[c] -= h;
    jacobian.select(1, c).copy_(
        (model.PrintOf(up) - model.PrintOf(down)).to(at::kDouble) / (2 * h));
  }
  return jacobian;
}

// JacobianPenalty() against |J^T e|^2 / N for the probe e the global
// generator gives after manual_seed(`seed`); its gradient reaches theta.
// Returns the penalty.
double ExpectPenaltyIsTheGainOnItsProbe(QuineModel& model,
                                        const at::Tensor& jacobian,
                                        uint64_t seed) {
  const int64_t n = jacobian.size(0);
  at::manual_seed(seed);
  const at::Tensor probe = at::randn({n}).to(at::kDouble);
  const double expected =
      at::mv(jacobian.t(), probe).pow(2).sum().item<double>() / n;
  at::manual_seed(seed);
  const at::Tensor penalty = model.JacobianPenalty();
  EXPECT_NEAR(penalty.item<double>(), expected, 0.02 * expected);
  penalty.backward();
  EXPECT_GT(model.weights().grad().abs().sum().item<double>(), 0);
  return penalty.item<double>();
}

// The Jacobian penalty against the tiny quine's Jacobian by central
// differences: |J^T e|^2 / N for the probe e the global generator gives;
// the step's loss adds w times it, and its gradient reaches theta.
TEST(QuineTest, JacobianPenaltyIsTheMapsGainOnItsProbe) {
  for (const std::string normalization : {"none", "initial_norm"}) {
    SCOPED_TRACE(normalization);
    const RunConfig config = ConfigWith(
        R"({"hidden_sizes": [3], "coordinate_embedding": 4,
            "jacobian_weight": 0.5, "print_normalization": ")" +
        normalization + R"("})");
    std::unique_ptr<QuineModel> model = MakeModel(config);
    const at::Tensor jacobian =
        PrintJacobianByDifferences(*model, model->weights());
    const double penalty =
        ExpectPenaltyIsTheGainOnItsProbe(*model, jacobian, 11);

    // The step's loss: L_SR + w * the penalty on the same probe.
    model->weights().mutable_grad() = at::Tensor();
    const at::Tensor batch = at::tensor({2, 5}, at::kLong);
    at::manual_seed(11);
    const double loss =
        model->Loss(model->Forward(batch), batch).item<double>();
    double sr = 0;
    {
      torch::NoGradGuard no_grad;
      sr = (model->PredictWeights(batch) -
            model->weights().index_select(0, batch))
               .pow(2)
               .sum()
               .item<double>();
    }
    EXPECT_NEAR(loss, sr + 0.5 * penalty, 1e-4 * loss);
  }
  EXPECT_FALSE(ParseQuineConfig(ConfigWith(R"({"jacobian_weight": -1})")).ok());
}

// jacobian_at_print: the penalty of the Jacobian at the print theta' =
// f_theta(C) (central differences there), its gradient reaching theta
// through theta'; refused without a scaled print.
TEST(QuineTest, JacobianPenaltyAtThePrintIsTheJacobianThere) {
  const RunConfig config = ConfigWith(
      R"({"hidden_sizes": [3], "coordinate_embedding": 4,
          "jacobian_weight": 1, "jacobian_at_print": true,
          "print_normalization": "initial_norm"})");
  std::unique_ptr<QuineModel> model = MakeModel(config);
  at::Tensor printed;
  {
    torch::NoGradGuard no_grad;
    printed = model->PrintOf(model->weights());
  }
  const at::Tensor jacobian = PrintJacobianByDifferences(*model, printed);
  ExpectPenaltyIsTheGainOnItsProbe(*model, jacobian, 3);
  EXPECT_EQ(std::string(ValidateQuineConfig(
                            ConfigWith(R"({"jacobian_at_print": true})"))
                            .message()),
            "model_config.jacobian_at_print: the print's own print is only "
            "computed whole with a scaled print: set "
            "model_config.print_normalization");
}

TEST(QuineTest, RegeneratesEveryTEpochs) {
  std::unique_ptr<QuineModel> every_third = MakeModel(
      ConfigWith(R"({"hidden_sizes": [4], "regenerate_every_epochs": 3})"));
  std::vector<bool> due;
  for (int epoch = 0; epoch < 6; ++epoch) {
    due.push_back(every_third->RegeneratesAfter(epoch));
  }
  EXPECT_EQ(due, (std::vector<bool>{false, false, true, false, false, true}));
  std::unique_ptr<QuineModel> never =
      MakeModel(ConfigWith(R"({"hidden_sizes": [4]})"));
  EXPECT_FALSE(never->RegeneratesAfter(0));
}

// The plain Trainer end to end, with a registry holding the quine, its
// coordinate data source, the built-in data and LibTorch's Adam.
class QuineRunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(
        registry_
            .Register(ModelEntry{"quine", "", MakeQuine, kDefaultConfigJson,
                                 ValidateQuineConfig, nullptr, "test"})
            .ok());
    ASSERT_TRUE(RegisterBuiltinDataSources(registry_).ok());
    ASSERT_TRUE(registry_
                    .Register(DataSourceEntry{kCoordinatesDataSource, "",
                                              MakeCoordinateSplits, nullptr,
                                              nullptr, "test"})
                    .ok());
    ASSERT_TRUE(RegisterTrainerStandIns(registry_).ok());
  }

  absl::StatusOr<TrainResult> Train(const RunConfig& config,
                                    const std::string& name) {
    PipelineContext context;
    context.config = &config;
    context.config_source = "test.json";
    context.run_dir = std::string(std::getenv("TEST_TMPDIR")) + "/" + name;
    context.registry = &registry_;
    Trainer trainer(context);
    return trainer.Run();
  }

  void ExpectResumeEndsAsTheWholeRun(const RunConfig& whole,
                                     const RunConfig& first,
                                     const std::string& name);

  PluginRegistry registry_;
};

TEST_F(QuineRunTest, ShortVanillaRunLowersTheSelfReplicationLoss) {
  // Unit-variance projections make the initial predictions far from theta.
  RunConfig config = ConfigWith(R"({"coordinate_embedding": 8,
      "hidden_sizes": [8, 8], "coordinate_projection_std": 1})",
                                R"({"epochs": 3, "batch_size": 10})");
  config.mutable_data_config()->set_dataset(kCoordinatesDataSource);
  const double initial = MakeModel(config)->Stats().sr_loss;
  absl::StatusOr<TrainResult> result = Train(config, "vanilla");
  ASSERT_TRUE(result.ok()) << result.status();
  // 8*8 + 8*8 + 8 = 136 coordinates: 14 steps per epoch.
  EXPECT_EQ(result->position.step, 3 * 14);
  EXPECT_LT(result->val.at("sr_loss"), 0.5 * initial);
  EXPECT_GT(result->val.at("weight_sq"), 0);
}

TEST_F(QuineRunTest, AuxiliaryRunReportsTaskAndReplication) {
  RunConfig config = ConfigWith(R"({"variant": "auxiliary",
      "coordinate_embedding": 4, "image_embedding": 4, "hidden_sizes": [8],
      "task_weight": 1, "coordinates_per_step": 5})",
                                R"({"epochs": 10, "batch_size": 16})");
  absl::StatusOr<TrainResult> result = Train(config, "auxiliary");
  ASSERT_TRUE(result.ok()) << result.status();
  for (const char* metric : {"accuracy", "loss", "sr_loss", "rho"}) {
    EXPECT_TRUE(result->test.count(metric)) << metric;
  }
  EXPECT_GT(result->test.at("accuracy"), 0.5);  // 3 well separated clusters
}

// A run cut after its first epoch and resumed ends with the bytes of the
// uninterrupted run's weights and its test metrics.
void QuineRunTest::ExpectResumeEndsAsTheWholeRun(const RunConfig& whole,
                                                 const RunConfig& first,
                                                 const std::string& name) {
  absl::StatusOr<TrainResult> uninterrupted = Train(whole, name + "_whole");
  ASSERT_TRUE(uninterrupted.ok()) << uninterrupted.status();
  absl::StatusOr<TrainResult> cut = Train(first, name + "_cut");
  ASSERT_TRUE(cut.ok()) << cut.status();
  PipelineContext context;
  context.config = &whole;
  context.config_source = "test.json";
  context.run_dir =
      std::string(std::getenv("TEST_TMPDIR")) + "/" + name + "_cut";
  context.registry = &registry_;
  context.resuming = true;
  context.resume_from = cut->final_checkpoint;
  Trainer trainer(context);
  absl::StatusOr<TrainResult> resumed = trainer.Run();
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  const auto bytes = [](const std::string& path) {
    std::ifstream in(WeightsPathFor(path), std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  ASSERT_EQ(resumed->position.step, uninterrupted->position.step);
  ASSERT_FALSE(bytes(uninterrupted->final_checkpoint).empty());
  EXPECT_EQ(bytes(resumed->final_checkpoint),
            bytes(uninterrupted->final_checkpoint));
  EXPECT_EQ(resumed->test, uninterrupted->test);
}

TEST_F(QuineRunTest, AuxiliaryRunResumesToTheSameWeights) {
  // 5 of 105 coordinates a step: the order is reshuffled every 21 steps, so
  // the resume lands in the middle of a pass.
  const std::string section = R"({"variant": "auxiliary",
      "coordinate_embedding": 4, "image_embedding": 4, "hidden_sizes": [8],
      "task_weight": 1, "coordinates_per_step": 5})";
  ExpectResumeEndsAsTheWholeRun(
      ConfigWith(section, R"({"epochs": 4, "batch_size": 5})"),
      ConfigWith(section, R"({"epochs": 1, "batch_size": 5})"), "aux");
}

// configs/quine_fixed_point.json in small: the scaled print, the two-step
// loss and the Jacobian penalty at the print, whose probes come from the
// global generator, regenerating every epoch.
TEST_F(QuineRunTest, FixedPointRunResumesToTheSameWeights) {
  const std::string section = R"({"coordinate_embedding": 4,
      "hidden_sizes": [4], "regenerate_every_epochs": 1, "sr_loss": "relative",
      "two_step_weight": 1, "print_normalization": "initial_norm",
      "jacobian_weight": 1, "jacobian_at_print": true,
      "spectral_radius_iterations": 4})";
  RunConfig whole = ConfigWith(section, R"({"epochs": 3, "batch_size": 7})");
  RunConfig first = ConfigWith(section, R"({"epochs": 1, "batch_size": 7})");
  for (RunConfig* config : {&whole, &first}) {
    config->mutable_data_config()->set_dataset(kCoordinatesDataSource);
  }
  ExpectResumeEndsAsTheWholeRun(whole, first, "fixed_point");
}

// The summary's result lines say the last epoch's rho before and after its
// regeneration and the map's radius, as epochs.jsonl records them, and what
// the train loss sums.
TEST_F(QuineRunTest, SummaryLinesShowTheLastRegeneration) {
  RunConfig config = ConfigWith(R"({"coordinate_embedding": 4,
      "hidden_sizes": [4], "regenerate_every_epochs": 1, "sr_loss": "relative",
      "print_normalization": "initial_norm",
      "spectral_radius_iterations": 4})",
                                R"({"epochs": 2, "batch_size": 7})");
  config.mutable_data_config()->set_dataset(kCoordinatesDataSource);
  absl::StatusOr<TrainResult> result = Train(config, "summary");
  ASSERT_TRUE(result.ok()) << result.status();
  std::ifstream in(std::string(std::getenv("TEST_TMPDIR")) +
                   "/summary/epochs.jsonl");
  const std::string records(std::istreambuf_iterator<char>(in), {});
  const std::vector<std::string> lines =
      absl::StrSplit(records, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 2u);
  absl::StatusOr<google::protobuf::Value> last = ParseJson(lines.back());
  ASSERT_TRUE(last.ok()) << last.status();
  const auto& model = last->struct_value().fields().at("model").struct_value();
  const auto number = [&](const char* name) {
    return model.fields().at(name).number_value();
  };
  const int64_t weights = MakeModel(config)->num_parameters();
  EXPECT_THAT(
      result->family_results,
      testing::ElementsAre(
          absl::StrFormat("self-replication after the last epoch: rho %.4g "
                          "before its regeneration, %.4g right after it (the "
                          "print scoring its own weights), sum(theta^2) %.4g",
                          number("rho"), number("rho_after_regeneration"),
                          number("weight_sq")),
          testing::StartsWith(absl::StrFormat(
              "regeneration map: spectral radius %.3g at the print",
              number("regeneration_spectral_radius"))),
          absl::StrFormat(
              "scale: the train loss sums L_SR over one step's coordinates, "
              "divided by their share of sum(theta^2) (plus the configured "
              "penalties); sr_loss sums it over all %d weights, and rho = "
              "sr_loss / sum(theta^2)",
              weights)));
}

TEST(QuineTest, AuxiliaryCoordinateOrderGoesThroughTheCheckpointState) {
  RunConfig config = ConfigWith(R"({"variant": "auxiliary",
      "task_weight": 1, "hidden_sizes": [4], "coordinates_per_step": 7})");
  std::unique_ptr<QuineModel> model = MakeModel(config, DataSpec{{2, 3}, 4});
  at::Tensor images = at::rand({5, 2, 3});
  at::Tensor labels = at::tensor(std::vector<int64_t>{0, 1, 2, 3, 1});
  for (int i = 0; i < 11; ++i) model->Loss(model->Forward(images), labels);
  ComponentState state;
  ASSERT_TRUE(model->SaveState(&state).ok());
  EXPECT_TRUE(state.Has("coordinate_cursor"));
  EXPECT_TRUE(state.Has("coordinate_order"));
  std::unique_ptr<QuineModel> restored = MakeModel(config, DataSpec{{2, 3}, 4});
  ASSERT_TRUE(restored->LoadState(state).ok());
  // The next L_SR terms draw the same coordinates (same weights: same seed).
  for (int i = 0; i < 30; ++i) {
    EXPECT_EQ(model->Loss(model->Forward(images), labels).item<double>(),
              restored->Loss(restored->Forward(images), labels).item<double>());
  }
  // A fresh model draws others: the state is what makes them equal.
  std::unique_ptr<QuineModel> fresh = MakeModel(config, DataSpec{{2, 3}, 4});
  model->LoadState(state).IgnoreError();
  bool differs = false;
  for (int i = 0; i < 5; ++i) {
    differs |= model->Loss(model->Forward(images), labels).item<double>() !=
               fresh->Loss(fresh->Forward(images), labels).item<double>();
  }
  EXPECT_TRUE(differs);
  ComponentState broken;
  broken.SetInt("coordinate_pass", 1);
  EXPECT_THAT(std::string(restored->LoadState(broken).message()),
              ::testing::HasSubstr("no integer 'coordinate_cursor'"));
  // The vanilla quine keeps nothing.
  ComponentState vanilla;
  ASSERT_TRUE(MakeModel(ConfigWith("{}"))->SaveState(&vanilla).ok());
  EXPECT_TRUE(vanilla.empty());
}

struct BadSection {
  const char* json;
  const char* error;
};

class QuineConfigErrorTest : public ::testing::TestWithParam<BadSection> {};

TEST_P(QuineConfigErrorTest, NamesFieldAndReason) {
  RunConfig config = ConfigWith(GetParam().json);
  EXPECT_EQ(std::string(ValidateQuineConfig(config).message()),
            GetParam().error);
}

INSTANTIATE_TEST_SUITE_P(
    Errors, QuineConfigErrorTest,
    ::testing::Values(
        BadSection{R"({"variant": "spiral"})",
                   "model_config.variant: unknown variant 'spiral'; known: "
                   "vanilla, auxiliary"},
        BadSection{R"({"hidden_sizes": [4, 0]})",
                   "model_config.hidden_sizes[1]: must be >= 1 (got 0)"},
        BadSection{R"({"regenerate_every_epochs": -1})",
                   "model_config.regenerate_every_epochs: must be >= 0 (got "
                   "-1)"},
        BadSection{R"({"variant": "auxiliary"})",
                   "model_config.task_weight: the auxiliary quine needs "
                   "lambda > 0 in L = L_SR + lambda * L_task (got 0)"},
        BadSection{R"({"task_weight": 0.1})",
                   "model_config.task_weight: only for variant 'auxiliary' "
                   "(the vanilla quine's training set is its coordinates, "
                   "run_config.batch_size per step)"},
        BadSection{R"({"zero_quine_fraction": 1.5})",
                   "model_config.zero_quine_fraction: must be in (0, 1) (got "
                   "1.5)"},
        BadSection{R"({"regeneration_damping": 1.5})",
                   "model_config.regeneration_damping: must be in (0, 1] (got "
                   "1.5)"},
        BadSection{R"({"sr_loss": "cosine"})",
                   "model_config.sr_loss: unknown sr_loss 'cosine'; known: "
                   "absolute, relative"},
        BadSection{R"({"contraction_weight": 1})",
                   "model_config.contraction_weight: the penalty acts along "
                   "the direction the regeneration's power iteration finds: "
                   "set model_config.spectral_radius_iterations > 0"},
        BadSection{R"({"contraction_weight": -1})",
                   "model_config.contraction_weight: must be a finite number "
                   ">= 0 (got -1)"},
        BadSection{R"({"contraction_ramp_epochs": -1})",
                   "model_config.contraction_ramp_epochs: must be >= 0 (got "
                   "-1)"},
        BadSection{R"({"contraction_directions": 0})",
                   "model_config.contraction_directions: must be >= 1 (got "
                   "0)"},
        BadSection{R"({"contraction_target": 0})",
                   "model_config.contraction_target: must be in (0, 1] (got "
                   "0)"},
        BadSection{R"({"print_normalization": "unit"})",
                   "model_config.print_normalization: unknown "
                   "print_normalization 'unit'; known: none, initial_norm, "
                   "per_matrix"}));

TEST(QuineConfigTest, TheDataFitsTheVariant) {
  // Under the plain train pipeline (no pipeline of its own).
  RunConfig config = ConfigWith("{}");
  EXPECT_EQ(std::string(ValidateQuineConfig(config).message()),
            "data_config.dataset: the vanilla quine trains on its own "
            "coordinates: set \"quine_coordinates\" (got 'synthetic')");
  config.mutable_data_config()->set_dataset(kCoordinatesDataSource);
  EXPECT_TRUE(ValidateQuineConfig(config).ok());
  RunConfig auxiliary = ConfigWith(R"({"variant": "auxiliary",
      "task_weight": 0.01})");
  EXPECT_TRUE(ValidateQuineConfig(auxiliary).ok());
  auxiliary.mutable_data_config()->set_dataset(kCoordinatesDataSource);
  EXPECT_EQ(std::string(ValidateQuineConfig(auxiliary).message()),
            "data_config.dataset: the auxiliary quine classifies images: "
            "name an image dataset such as mnist_digits (got "
            "'quine_coordinates')");
}

TEST(QuineConfigTest, CoordinatesAreEveryWeightInEverySplit) {
  RunConfig config = ConfigWith(R"({"coordinate_embedding": 8,
      "hidden_sizes": [8, 8]})");
  config.mutable_data_config()->set_dataset(kCoordinatesDataSource);
  absl::StatusOr<DataSplits> splits =
      MakeCoordinateSplits(DataSourceContext{&config, "test.json"});
  ASSERT_TRUE(splits.ok()) << splits.status();
  // 8*8 + 8*8 + 8 weights.
  for (const Dataset* split : {&splits->train, &splits->val, &splits->test}) {
    ASSERT_EQ(split->size(), 136);
    EXPECT_EQ(split->inputs.scalar_type(), at::kLong);
    EXPECT_TRUE(split->inputs.flatten().equal(at::arange(136, at::kLong)));
  }
}

}  // namespace
}  // namespace ouroboros::quine
