#include <ATen/ATen.h>
#include <c10/util/string_utils.h>
#include <torch/nn/module.h>
#include <torch/optim/adam.h>
#include <torch/optim/sgd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "plugins/introspective/demo.h"
#include "plugins/introspective/hooks.h"
#include "plugins/introspective/introspection_net.h"
#include "plugins/introspective/weight_history.h"

namespace ouroboros::introspective {
namespace {

using ::testing::HasSubstr;

std::string Scratch(const std::string& name) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  std::filesystem::path dir =
      std::filesystem::path(tmp != nullptr ? tmp : "/tmp") / name;
  std::filesystem::create_directories(dir);
  return dir.string();
}

// A module with parameters of 3 x 4, 5 and 2 x 2 x 3 weights.
std::shared_ptr<torch::nn::Module> SmallModule() {
  auto module = std::make_shared<torch::nn::Module>();
  module->register_parameter("a", at::randn({3, 4}));
  module->register_parameter("b", at::randn({5}));
  module->register_parameter("c", at::randn({2, 2, 3}));
  return module;
}

// RMS of flat[begin, end), in double precision.
double Rms(const at::Tensor& flat, int64_t begin, int64_t end) {
  at::Tensor slice = flat.narrow(0, begin, end - begin).to(at::kDouble);
  return std::max(std::sqrt((slice * slice).mean().item<double>()), 1e-12);
}

// The expected features and target of weight i, computed one weight at a
// time with scalar arithmetic.
struct Expected {
  double x[4];
  double target;
  double move_scale;
};

// `steps`: the snapshot steps of w(0), w(0.4t), w(0.7t), w(t); `two_t`: of
// the target.
Expected ExpectedRowAt(const std::map<int64_t, at::Tensor>& snapshots,
                       const ParameterLayout& layout,
                       const std::array<int64_t, 4>& steps, int64_t two_t,
                       int64_t i) {
  int64_t begin = 0, tensor = 0;
  while (begin + layout.sizes[tensor] <= i) begin += layout.sizes[tensor++];
  const int64_t end = begin + layout.sizes[tensor];
  const at::Tensor& wt = snapshots.at(steps[3]);
  const double c_move = Rms(wt - snapshots.at(0), begin, end);
  const double c_pos = Rms(wt, begin, end);
  Expected e;
  for (int k = 0; k < 3; ++k) {
    e.x[k] = (snapshots.at(steps[k])[i].item<double>() - wt[i].item<double>()) /
             c_move;
  }
  e.x[3] = wt[i].item<double>() / c_pos;
  e.target =
      (snapshots.at(two_t)[i].item<double>() - wt[i].item<double>()) / c_move;
  e.move_scale = c_move;
  return e;
}

Expected ExpectedRow(const std::map<int64_t, at::Tensor>& snapshots,
                     const ParameterLayout& layout, int64_t t, int64_t i) {
  return ExpectedRowAt(snapshots, layout, HistorySteps(t), 2 * t, i);
}

TEST(WeightHistoryTest, SnapshotsAreFlatCopiesAndWriteBackInPlace) {
  torch::manual_seed(1);
  auto module = SmallModule();
  ParameterLayout layout = LayoutOf(*module);
  EXPECT_EQ(layout.total, 12 + 5 + 12);
  EXPECT_EQ(layout.names, (std::vector<std::string>{"a", "b", "c"}));
  at::Tensor flat = Snapshot(*module);
  ASSERT_EQ(flat.numel(), 29);
  EXPECT_TRUE(at::equal(flat.narrow(0, 12, 5), module->parameters()[1]));
  EXPECT_EQ(layout.tensor_of[16].item<int64_t>(), 1);
  EXPECT_EQ(layout.tensor_of[17].item<int64_t>(), 2);
  // A copy: training on does not change it.
  const void* storage = module->parameters()[0].data_ptr();
  at::Tensor changed = flat * 2;
  ASSERT_TRUE(WriteSnapshot(changed, *module).ok());
  EXPECT_EQ(module->parameters()[0].data_ptr(), storage);
  EXPECT_TRUE(at::equal(Snapshot(*module), changed));
  EXPECT_FALSE(at::equal(Snapshot(*module), flat));
  EXPECT_FALSE(WriteSnapshot(at::zeros({28}), *module).ok());
}

TEST(WeightHistoryTest, DatasetIsBuiltExactlyFromTheSnapshots) {
  torch::manual_seed(2);
  auto module = SmallModule();
  ParameterLayout layout = LayoutOf(*module);
  std::map<int64_t, at::Tensor> snapshots;
  for (int64_t step : {0, 4, 7, 10, 8, 14, 20, 40}) {
    snapshots[step] = at::randn({layout.total});
  }
  SamplingOptions all;
  all.samples_per_t = 1000;
  all.balance_bins = 1;
  absl::StatusOr<HistoryDataset> dataset =
      BuildHistoryDataset(snapshots, {10, 20}, layout, all);
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  ASSERT_EQ(dataset->size(), 2 * layout.total);
  for (int64_t r = 0; r < dataset->size(); ++r) {
    const int64_t t = dataset->t[r].item<int64_t>();
    const int64_t i = dataset->weight_index[r].item<int64_t>();
    EXPECT_EQ(t, r < layout.total ? 10 : 20);
    EXPECT_EQ(i, r % layout.total);
    Expected e = ExpectedRow(snapshots, layout, t, i);
    for (int k = 0; k < 4; ++k) {
      EXPECT_NEAR(dataset->inputs[r][k].item<double>(), e.x[k],
                  1e-5 * (1 + std::abs(e.x[k])))
          << "row " << r << " input " << k;
    }
    EXPECT_NEAR(dataset->targets[r].item<double>(), e.target,
                1e-5 * (1 + std::abs(e.target)));
  }
  // A balanced sample is a subset of the same rows.
  SamplingOptions balanced;
  balanced.samples_per_t = 12;
  balanced.balance_bins = 3;
  absl::StatusOr<HistoryDataset> sample =
      BuildHistoryDataset(snapshots, {10}, layout, balanced);
  ASSERT_TRUE(sample.ok()) << sample.status();
  EXPECT_GT(sample->size(), 0);
  EXPECT_LE(sample->size(), 12);
  std::set<int64_t> seen;
  for (int64_t r = 0; r < sample->size(); ++r) {
    const int64_t i = sample->weight_index[r].item<int64_t>();
    EXPECT_TRUE(seen.insert(i).second) << "weight " << i << " twice";
    Expected e = ExpectedRow(snapshots, layout, 10, i);
    EXPECT_NEAR(sample->targets[r].item<double>(), e.target,
                1e-5 * (1 + std::abs(e.target)));
  }
  // Saved and read back unchanged.
  const std::string path = Scratch("dataset") + "/h.pt";
  ASSERT_TRUE(SaveHistoryDataset(*dataset, path).ok());
  absl::StatusOr<HistoryDataset> read = LoadHistoryDataset(path);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_TRUE(at::equal(read->inputs, dataset->inputs));
  EXPECT_TRUE(at::equal(read->weight_index, dataset->weight_index));
  // A missing snapshot is named.
  snapshots.erase(7);
  absl::Status missing =
      BuildHistoryDataset(snapshots, {10}, layout, all).status();
  EXPECT_EQ(missing.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(missing.message(), HasSubstr("no snapshot of step 7"));
}

TEST(WeightHistoryTest, HistoryStepsRoundHalvesUp) {
  EXPECT_EQ(HistorySteps(10), (std::array<int64_t, 4>{0, 4, 7, 10}));
  // 0.4 * 15 = 6, 0.7 * 15 = 10.5 -> 11.
  EXPECT_EQ(HistorySteps(15), (std::array<int64_t, 4>{0, 6, 11, 15}));
  EXPECT_EQ(HistorySteps(5), (std::array<int64_t, 4>{0, 2, 4, 5}));
}

TEST(WeightHistoryTest, BalancedSampleNeverReturnsMoreThanCount) {
  // Every one of 4 bins holds far more than its share: at most 10 in all
  // (ceil(10 / 4) per bin would give 12).
  at::Tensor movement = at::logspace(-6, 0, 1000, 10.0, at::kFloat);
  for (int64_t count : {10, 11, 12, 13}) {
    EXPECT_EQ(BalancedSample(movement, count, 4, 3).numel(), count);
  }
  EXPECT_EQ(BalancedSample(movement, 7, 8, 3).numel(), 7);
}

TEST(WeightHistoryTest, BalancedSampleTakesAsManyMoversAsStayers) {
  torch::manual_seed(8);
  // 990 weights that barely move, 10 that move a lot.
  at::Tensor movement = at::full({1000}, 1e-4);
  movement.narrow(0, 500, 10).fill_(1.0);
  movement.narrow(0, 0, 990).mul_(at::rand({990}) + 0.5);
  at::Tensor chosen = BalancedSample(movement, 20, 2, 7);
  ASSERT_EQ(chosen.numel(), 20);
  int movers = 0;
  for (int64_t i = 0; i < chosen.numel(); ++i) {
    movers += movement[chosen[i].item<int64_t>()].item<double>() > 0.5;
  }
  EXPECT_EQ(movers, 10);
  // Uniform sampling would almost never pick so many of them.
  at::Tensor uniform = BalancedSample(movement, 20, 1, 7);
  int uniform_movers = 0;
  for (int64_t i = 0; i < uniform.numel(); ++i) {
    uniform_movers += movement[uniform[i].item<int64_t>()].item<double>() > 0.5;
  }
  EXPECT_LT(uniform_movers, 5);
}

TEST(IntrospectionNetTest, BatchedPredictionEqualsAPerWeightLoop) {
  torch::manual_seed(3);
  auto module = std::make_shared<torch::nn::Module>();
  // 4,100 + 37 weights: full blocks, a partial one, several threads' worth.
  module->register_parameter("w", at::randn({41, 100}));
  module->register_parameter("b", at::randn({37}));
  ParameterLayout layout = LayoutOf(*module);
  std::map<int64_t, at::Tensor> snapshots;
  std::array<at::Tensor, 4> history;
  const std::array<int64_t, 4> steps = HistorySteps(20);
  for (int k = 0; k < 4; ++k) {
    history[k] = at::randn({layout.total});
    snapshots[steps[k]] = history[k];
  }
  snapshots[40] = history[3];
  IntrospectionNet net(7);
  at::Tensor batched = PredictWeights(net, history, layout);
  ASSERT_EQ(batched.numel(), layout.total);
  for (int64_t i = 0; i < layout.total; i += 1 + (i % 7)) {
    Expected e = ExpectedRow(snapshots, layout, 20, i);
    at::Tensor x = at::tensor({e.x[0], e.x[1], e.x[2], e.x[3]}, at::kFloat)
                       .reshape({1, 4});
    const double out = net.Forward(x).item<double>();
    const double expected = history[3][i].item<double>() + e.move_scale * out;
    EXPECT_NEAR(batched[i].item<double>(), expected,
                1e-5 * (1 + std::abs(expected)))
        << "weight " << i;
  }
  // Predict on row-major inputs gives the same as on the column-major ones.
  HistoryFeatures features = ComputeFeatures(history, layout);
  EXPECT_TRUE(at::allclose(net.Predict(features.inputs.contiguous()),
                           net.Forward(features.inputs.contiguous()), 1e-5,
                           1e-5));
}

TEST(IntrospectionNetTest, SavesLoadsAndRefusesOtherFiles) {
  torch::manual_seed(4);
  IntrospectionNet net(9);
  const std::string dir = Scratch("net");
  ASSERT_TRUE(net.Save(dir + "/i.pt").ok());
  absl::StatusOr<std::unique_ptr<IntrospectionNet>> read =
      IntrospectionNet::Load(dir + "/i.pt");
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ((*read)->hidden_size(), 9);
  at::Tensor x = at::randn({50, 4});
  EXPECT_TRUE(at::equal((*read)->Predict(x), net.Predict(x)));
  std::ofstream(dir + "/junk.pt") << "not a tensor file";
  absl::Status junk = IntrospectionNet::Load(dir + "/junk.pt").status();
  EXPECT_EQ(junk.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(junk.message(), HasSubstr("junk.pt: not an introspection"));
  EXPECT_EQ(IntrospectionNet::Load(dir + "/none.pt").status().code(),
            absl::StatusCode::kNotFound);
}

TEST(LinearBaselineTest, ExtrapolatesTheLeastSquaresLine) {
  // Values 1, 2, 0, 3 at steps 0, 4, 7, 10: the fitted line at step 20 is
  // 3.2511415... (numpy.polyfit); a weight on a line stays on it.
  const std::array<int64_t, 4> steps = {0, 4, 7, 10};
  at::Tensor w0 = at::tensor({1.0, -3.0}, at::kDouble);
  at::Tensor w4 = at::tensor({2.0, -3.0 + 0.5 * 4}, at::kDouble);
  at::Tensor w7 = at::tensor({0.0, -3.0 + 0.5 * 7}, at::kDouble);
  at::Tensor w10 = at::tensor({3.0, -3.0 + 0.5 * 10}, at::kDouble);
  at::Tensor predicted = ExtrapolateLinearly({w0, w4, w7, w10}, steps, 20);
  EXPECT_NEAR(predicted[0].item<double>(), 3.251141552511416, 1e-12);
  EXPECT_NEAR(predicted[1].item<double>(), -3.0 + 0.5 * 20, 1e-12);
}

TEST(IntrospectionNetTest, TrainingLearnsALinearTrend) {
  // Moves that continue the trend: target = -x0 (w(2t) - w(t) = w(t) - w(0)).
  torch::manual_seed(5);
  HistoryDataset dataset;
  dataset.inputs = at::randn({4000, 4});
  dataset.targets = -dataset.inputs.select(1, 0).clone();
  dataset.weight_index = at::arange(4000, at::kLong);
  dataset.t = at::full({4000}, 10, at::kLong);
  IntrospectionNet net(16);
  torch::optim::Adam adam(net.module().parameters(),
                          torch::optim::AdamOptions(0.01));
  IntrospectionTrainOptions options;
  options.epochs = 20;
  options.batch_size = 128;
  absl::StatusOr<IntrospectionTrainResult> result =
      TrainIntrospectionNet(dataset, options, adam, &net);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->val_rows, 400);
  EXPECT_NEAR(result->linear_error, 0, 1e-6);
  EXPECT_GT(result->no_move_error, 0.5);
  EXPECT_LT(result->val_error, 0.1 * result->no_move_error);
}

// A two-layer net, its optimizer, and one training step on fixed data.
struct TinyTraining {
  std::shared_ptr<torch::nn::Module> module =
      std::make_shared<torch::nn::Module>();
  at::Tensor w1, w2;
  at::Tensor x = at::randn({32, 6});
  at::Tensor y = at::randint(0, 3, {32}, at::kLong);
  TinyTraining() {
    w1 = module->register_parameter("w1", at::randn({6, 8}) * 0.3);
    w2 = module->register_parameter("w2", at::randn({8, 3}) * 0.3);
  }
  double Step(torch::optim::Optimizer& optimizer) {
    at::Tensor loss = at::cross_entropy_loss(at::relu(x.mm(w1)).mm(w2), y);
    optimizer.zero_grad();
    loss.backward();
    optimizer.step();
    return loss.item<double>();
  }
};

JumpHookConfig JumpConfig(const std::string& state) {
  JumpHookConfig config;
  config.set_predictor(kNetworkPredictor);
  config.set_network("unused");
  config.add_jump_steps(10);
  config.set_optimizer_state(state);
  return config;
}

TEST(JumpHookTest, JumpWritesIntoTheLiveWeightsAndTrainingGoesOn) {
  for (const std::string state : {"keep", "reset"}) {
    SCOPED_TRACE(state);
    torch::manual_seed(6);
    TinyTraining training;
    torch::optim::Adam adam(training.module->parameters(),
                            torch::optim::AdamOptions(0.01));
    auto net = std::make_unique<IntrospectionNet>(5);
    IntrospectionNet* net_view = net.get();
    JumpHook hook(JumpConfig(state), std::move(net), Scratch("jump_" + state));
    ParameterLayout layout = LayoutOf(*training.module);
    std::map<int64_t, at::Tensor> seen;
    TrainingView view{training.module.get(), &adam, 0, 0, ""};
    seen[0] = Snapshot(*training.module);
    ASSERT_TRUE(hook.OnTrainBegin(view).ok());
    const void* w1_storage = training.w1.data_ptr();
    for (int64_t step = 1; step <= 14; ++step) {
      training.Step(adam);
      view.step = step;
      seen[step] = Snapshot(*training.module);
      ASSERT_TRUE(hook.OnStepEnd(view).ok());
      if (step != 10) {
        EXPECT_TRUE(at::equal(Snapshot(*training.module), seen[step]));
        continue;
      }
      // Step 10: I's prediction from the weights at 0, 4, 7 and 10.
      at::Tensor expected = PredictWeights(
          *net_view, {seen[0], seen[4], seen[7], seen[10]}, layout);
      EXPECT_TRUE(at::allclose(Snapshot(*training.module), expected));
      EXPECT_FALSE(at::equal(Snapshot(*training.module), seen[10]));
      EXPECT_EQ(training.w1.data_ptr(), w1_storage);
      EXPECT_EQ(hook.jumps_done(), 1);
      if (state == "keep") {
        ASSERT_EQ(adam.state().size(), 2u);
      } else {
        EXPECT_EQ(adam.state().size(), 0u);
      }
    }
    // The optimizer's state is whole and consistent after the next steps.
    ASSERT_EQ(adam.state().size(), 2u);
    for (const at::Tensor& p : training.module->parameters()) {
      auto& s = static_cast<torch::optim::AdamParamState&>(
          *adam.state().at(c10::guts::to_string(p.unsafeGetTensorImpl())));
      EXPECT_EQ(s.exp_avg().sizes(), p.sizes());
      EXPECT_EQ(s.exp_avg_sq().sizes(), p.sizes());
      EXPECT_EQ(s.step(), state == "keep" ? 14 : 4);
      EXPECT_TRUE(at::isfinite(s.exp_avg_sq()).all().item<bool>());
    }
    const double loss = training.Step(adam);
    EXPECT_TRUE(std::isfinite(loss));
    EXPECT_TRUE(at::isfinite(Snapshot(*training.module)).all().item<bool>());
  }
}

TEST(JumpHookTest, TheLinearBaselineJumpsWithoutANetwork) {
  torch::manual_seed(6);
  TinyTraining training;
  torch::optim::SGD sgd(training.module->parameters(),
                        torch::optim::SGDOptions(0.1));
  JumpHookConfig config = JumpConfig("keep");
  config.set_predictor(kLinearPredictor);
  config.clear_network();
  JumpHook hook(config, nullptr, "");
  TrainingView view{training.module.get(), &sgd, 0, 0, ""};
  std::map<int64_t, at::Tensor> seen;
  seen[0] = Snapshot(*training.module);
  ASSERT_TRUE(hook.OnTrainBegin(view).ok());
  for (int64_t step = 1; step <= 10; ++step) {
    training.Step(sgd);
    view.step = step;
    seen[step] = Snapshot(*training.module);
    ASSERT_TRUE(hook.OnStepEnd(view).ok());
  }
  EXPECT_TRUE(
      at::allclose(Snapshot(*training.module),
                   ExtrapolateLinearly({seen[0], seen[4], seen[7], seen[10]},
                                       {0, 4, 7, 10}, 20)));
  EXPECT_EQ(hook.jumps_done(), 1);
}

TEST(RecordHookTest, RowsComeFromTheSnapshotsOfStepsZeroFourSevenTenTwenty) {
  torch::manual_seed(11);
  TinyTraining training;
  torch::optim::SGD sgd(training.module->parameters(),
                        torch::optim::SGDOptions(0.5));
  const std::string dir = Scratch("record_steps");
  RecordHookConfig config;
  config.add_t_steps(10);
  config.set_samples_per_t(1000);  // more than the 72 weights: every one
  config.set_balance_bins(1);
  RecordHook hook(config, dir + "/h.pt", 1);
  // The test's own snapshot after every step.
  std::map<int64_t, at::Tensor> own;
  TrainingView view{training.module.get(), &sgd, 0, 0, dir};
  own[0] = Snapshot(*training.module);
  ASSERT_TRUE(hook.OnTrainBegin(view).ok());
  for (int64_t step = 1; step <= 20; ++step) {
    training.Step(sgd);
    view.step = step;
    own[step] = Snapshot(*training.module);
    ASSERT_TRUE(hook.OnStepEnd(view).ok());
    EXPECT_EQ(hook.written(), step == 20) << step;
  }
  ASSERT_TRUE(hook.OnTrainEnd(view).ok());
  absl::StatusOr<HistoryDataset> dataset = LoadHistoryDataset(dir + "/h.pt");
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  const ParameterLayout layout = LayoutOf(*training.module);
  ASSERT_EQ(dataset->size(), layout.total);
  for (int64_t r = 0; r < dataset->size(); ++r) {
    const int64_t i = dataset->weight_index[r].item<int64_t>();
    EXPECT_EQ(dataset->t[r].item<int64_t>(), 10);
    // Steps written out, not taken from HistorySteps.
    Expected e = ExpectedRowAt(own, layout, {0, 4, 7, 10}, 20, i);
    for (int k = 0; k < 4; ++k) {
      EXPECT_NEAR(dataset->inputs[r][k].item<double>(), e.x[k],
                  1e-4 * (1 + std::abs(e.x[k])))
          << "row " << r << " input " << k;
    }
    EXPECT_NEAR(dataset->targets[r].item<double>(), e.target,
                1e-4 * (1 + std::abs(e.target)))
        << "row " << r;
  }
  // The snapshots leave memory (and the checkpoints) once the dataset is
  // written: the state then says only that.
  EXPECT_TRUE(hook.snapshots().empty());
  ComponentState state;
  ASSERT_TRUE(hook.SaveState(&state).ok());
  EXPECT_EQ(*state.GetInt("written"), 1);
  EXPECT_TRUE(state.tensors().empty());
}

// Adam's direction, m_hat / (sqrt(v_hat) + eps), against moments summed by
// hand from the gradients of three steps; SGD has none to give.
TEST(OptimizerFeaturesTest, AdamDirectionIsTheBiasCorrectedStep) {
  torch::manual_seed(21);
  TinyTraining training;
  torch::optim::Adam adam(
      training.module->parameters(),
      torch::optim::AdamOptions(0.01).betas({0.8, 0.99}).eps(1e-6));
  std::vector<at::Tensor> first, second;
  for (const at::Tensor& p : training.module->parameters()) {
    first.push_back(at::zeros_like(p).to(at::kDouble));
    second.push_back(at::zeros_like(p).to(at::kDouble));
  }
  for (int step = 0; step < 3; ++step) {
    training.Step(adam);
    int i = 0;
    for (const at::Tensor& p : training.module->parameters()) {
      const at::Tensor g = p.grad().to(at::kDouble);
      first[i] = 0.8 * first[i] + 0.2 * g;
      second[i] = 0.99 * second[i] + 0.01 * g * g;
      ++i;
    }
  }
  std::vector<at::Tensor> expected;
  for (size_t i = 0; i < first.size(); ++i) {
    expected.push_back(((first[i] / (1 - std::pow(0.8, 3))) /
                        ((second[i] / (1 - std::pow(0.99, 3))).sqrt() + 1e-6))
                           .reshape({-1}));
  }
  absl::StatusOr<at::Tensor> direction = AdamDirection(adam, *training.module);
  ASSERT_TRUE(direction.ok()) << direction.status();
  EXPECT_TRUE(
      at::allclose(direction->to(at::kDouble), at::cat(expected), 1e-4, 1e-5));
  torch::optim::SGD sgd(training.module->parameters(),
                        torch::optim::SGDOptions(0.1));
  EXPECT_THAT(
      std::string(AdamDirection(sgd, *training.module).status().message()),
      HasSubstr("must be adam or adamw"));
}

// With optimizer_features the recorder's rows gain Adam's direction at t,
// the net reads 5 inputs (saved and loaded as such), and a jump feeds it
// the direction at the jump step.
TEST(OptimizerFeaturesTest, RecordedRowsAndJumpsCarryAdamsDirection) {
  torch::manual_seed(22);
  TinyTraining training;
  torch::optim::Adam adam(training.module->parameters(),
                          torch::optim::AdamOptions(0.01));
  const std::string dir = Scratch("record_adam");
  RecordHookConfig config;
  config.add_t_steps(10);
  config.set_samples_per_t(1000);
  config.set_balance_bins(1);
  config.set_optimizer_features(true);
  RecordHook hook(config, dir + "/h.pt", 1);
  TrainingView view{training.module.get(), &adam, 0, 0, dir};
  ASSERT_TRUE(hook.OnTrainBegin(view).ok());
  at::Tensor direction_at_10;
  for (int64_t step = 1; step <= 20; ++step) {
    training.Step(adam);
    view.step = step;
    if (step == 10) direction_at_10 = *AdamDirection(adam, *training.module);
    ASSERT_TRUE(hook.OnStepEnd(view).ok());
    if (step == 15) {
      // A checkpoint here carries the direction of t = 10 for a resume.
      ComponentState state;
      ASSERT_TRUE(hook.SaveState(&state).ok());
      ASSERT_TRUE(state.Has("direction/10"));
      EXPECT_TRUE(at::equal(*state.GetTensor("direction/10"), direction_at_10));
      RecordHook resumed(config, dir + "/unused.pt", 1);
      EXPECT_TRUE(resumed.LoadState(state).ok());
    }
  }
  absl::StatusOr<HistoryDataset> dataset = LoadHistoryDataset(dir + "/h.pt");
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  ASSERT_EQ(dataset->inputs.size(1), 5);
  EXPECT_TRUE(
      at::allclose(dataset->inputs.select(1, 4),
                   direction_at_10.index_select(0, dataset->weight_index)));

  const std::string path = dir + "/i5.pt";
  ASSERT_TRUE(IntrospectionNet(6, 5).Save(path).ok());
  absl::StatusOr<std::unique_ptr<IntrospectionNet>> loaded =
      IntrospectionNet::Load(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ((*loaded)->inputs(), 5);
  EXPECT_TRUE(at::allclose((*loaded)->Predict(dataset->inputs),
                           (*loaded)->Forward(dataset->inputs).detach()));

  // A jump at 10 with the 5-input net, in a fresh run of the same seed.
  torch::manual_seed(22);
  TinyTraining again;
  torch::optim::Adam adam_again(again.module->parameters(),
                                torch::optim::AdamOptions(0.01));
  const IntrospectionNet& net = **loaded;
  JumpHook jump(JumpConfig("keep"), std::move(*loaded), "");
  TrainingView jump_view{again.module.get(), &adam_again, 0, 0, ""};
  std::map<int64_t, at::Tensor> seen;
  seen[0] = Snapshot(*again.module);
  ASSERT_TRUE(jump.OnTrainBegin(jump_view).ok());
  for (int64_t step = 1; step <= 10; ++step) {
    again.Step(adam_again);
    jump_view.step = step;
    seen[step] = Snapshot(*again.module);
    if (step == 10) {
      const at::Tensor expected = PredictWeights(
          net, {seen[0], seen[4], seen[7], seen[10]}, LayoutOf(*again.module),
          *AdamDirection(adam_again, *again.module));
      ASSERT_TRUE(jump.OnStepEnd(jump_view).ok());
      EXPECT_TRUE(at::allclose(Snapshot(*again.module), expected));
    } else {
      ASSERT_TRUE(jump.OnStepEnd(jump_view).ok());
    }
  }
}

TEST(RecordHookTest, SnapshotsGoThroughTheCheckpointState) {
  torch::manual_seed(14);
  TinyTraining training;
  torch::optim::SGD sgd(training.module->parameters(),
                        torch::optim::SGDOptions(0.5));
  const std::string dir = Scratch("record_state");
  RecordHookConfig config;
  config.add_t_steps(10);
  RecordHook hook(config, dir + "/h.pt", 1);
  TrainingView view{training.module.get(), &sgd, 0, 0, dir};
  ASSERT_TRUE(hook.OnTrainBegin(view).ok());
  for (int64_t step = 1; step <= 8; ++step) {
    training.Step(sgd);
    view.step = step;
    ASSERT_TRUE(hook.OnStepEnd(view).ok());
  }
  ComponentState state;
  ASSERT_TRUE(hook.SaveState(&state).ok());
  EXPECT_EQ(*state.GetInt("written"), 0);
  EXPECT_EQ(*state.GetInt("snapshots"), 3);  // steps 0, 4, 7
  RecordHook resumed(config, dir + "/h.pt", 1);
  ASSERT_TRUE(resumed.LoadState(state).ok());
  ASSERT_TRUE(resumed.OnTrainBegin(view).ok());
  ASSERT_EQ(resumed.snapshots().size(), 3u);
  EXPECT_TRUE(at::equal(resumed.snapshots().at(4), hook.snapshots().at(4)));
  // A state without a snapshot the resume needs is refused, by step.
  ComponentState partial = state;
  ComponentState without_four;
  without_four.SetInt("written", 0);
  without_four.SetInt("snapshots", 2);
  without_four.SetTensor("snapshot/0", *state.GetTensor("snapshot/0"));
  without_four.SetTensor("snapshot/7", *state.GetTensor("snapshot/7"));
  RecordHook missing(config, dir + "/h.pt", 1);
  ASSERT_TRUE(missing.LoadState(without_four).ok());
  EXPECT_THAT(std::string(missing.OnTrainBegin(view).message()),
              HasSubstr("cannot resume at step 8: the snapshot of step 4 is "
                        "needed"));
  // One that does not parse says what is wrong.
  partial.SetInt("snapshots", 5);
  EXPECT_THAT(
      std::string(RecordHook(config, "", 1).LoadState(partial).message()),
      HasSubstr("5 snapshots listed, 3 found"));
}

TEST(RecordHookTest, FailsWhenTheRunEndsBeforeAnyTwoT) {
  torch::manual_seed(12);
  TinyTraining training;
  torch::optim::SGD sgd(training.module->parameters(),
                        torch::optim::SGDOptions(0.5));
  const std::string dir = Scratch("record_short");
  RecordHookConfig config;
  config.add_t_steps(10);
  config.set_samples_per_t(100);
  config.set_balance_bins(1);
  RecordHook hook(config, dir + "/h.pt", 1);
  TrainingView view{training.module.get(), &sgd, 0, 0, dir};
  ASSERT_TRUE(hook.OnTrainBegin(view).ok());
  for (int64_t step = 1; step <= 12; ++step) {
    training.Step(sgd);
    view.step = step;
    ASSERT_TRUE(hook.OnStepEnd(view).ok());
  }
  absl::Status end = hook.OnTrainEnd(view);
  EXPECT_EQ(end.code(), absl::StatusCode::kAborted);  // exit 1, not 2
  EXPECT_THAT(end.message(), HasSubstr("nothing was recorded"));
  EXPECT_FALSE(std::filesystem::exists(dir + "/h.pt"));
}

TEST(HooksTest, OnlyTheRankThatWritesOutputsWritesFiles) {
  torch::manual_seed(13);
  TinyTraining training;
  torch::optim::SGD sgd(training.module->parameters(),
                        torch::optim::SGDOptions(0.5));
  const std::string dir = Scratch("other_rank");
  RecordHookConfig record_config;
  record_config.add_t_steps(5);
  RecordHook record(record_config, dir + "/h.pt", 1);
  JumpHook jump(JumpConfig("keep"), std::make_unique<IntrospectionNet>(4), dir);
  TrainingView view{training.module.get(), &sgd, 0, 0, dir};
  view.writes_outputs = false;
  ASSERT_TRUE(record.OnTrainBegin(view).ok());
  ASSERT_TRUE(jump.OnTrainBegin(view).ok());
  for (int64_t step = 1; step <= 12; ++step) {
    training.Step(sgd);
    view.step = step;
    ASSERT_TRUE(record.OnStepEnd(view).ok());
    ASSERT_TRUE(jump.OnStepEnd(view).ok());
  }
  ASSERT_TRUE(record.OnTrainEnd(view).ok());
  ASSERT_TRUE(jump.OnTrainEnd(view).ok());
  EXPECT_EQ(jump.jumps_done(), 1);  // every rank jumps
  EXPECT_FALSE(std::filesystem::exists(dir + "/h.pt"));
  EXPECT_FALSE(std::filesystem::exists(dir + "/" + kJumpLogFile));
}

TEST(JumpHookTest, NonFinitePredictionIsAnError) {
  torch::manual_seed(14);
  TinyTraining training;
  torch::optim::SGD sgd(training.module->parameters(),
                        torch::optim::SGDOptions(0.5));
  auto net = std::make_unique<IntrospectionNet>(4);
  {
    torch::NoGradGuard no_grad;
    for (auto& item : net->module().named_parameters()) {
      if (item.key() == "fc2.bias") item.value().fill_(NAN);
    }
  }
  JumpHook hook(JumpConfig("keep"), std::move(net), "");
  TrainingView view{training.module.get(), &sgd, 0, 0, ""};
  ASSERT_TRUE(hook.OnTrainBegin(view).ok());
  const at::Tensor before_jump_weights = Snapshot(*training.module);
  absl::Status status;
  for (int64_t step = 1; step <= 10 && status.ok(); ++step) {
    training.Step(sgd);
    view.step = step;
    status = hook.OnStepEnd(view);
  }
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(status.message(),
              HasSubstr("at step 10: predictor network predicted "
                        "non-finite weights (is unused a trained network?)"));
  EXPECT_TRUE(at::isfinite(Snapshot(*training.module)).all().item<bool>());
  EXPECT_EQ(hook.jumps_done(), 0);
}

TEST(IntrospectionNetTest, NonFiniteLossIsAnErrorNamingTheEpoch) {
  torch::manual_seed(15);
  HistoryDataset dataset;
  dataset.inputs = at::randn({200, 4});
  dataset.targets = at::randn({200});
  dataset.targets[17] = NAN;
  dataset.weight_index = at::arange(200, at::kLong);
  dataset.t = at::full({200}, 10, at::kLong);
  IntrospectionNet net(4);
  torch::optim::Adam adam(net.module().parameters(),
                          torch::optim::AdamOptions(0.01));
  IntrospectionTrainOptions options;
  options.epochs = 3;
  options.batch_size = 50;
  absl::StatusOr<IntrospectionTrainResult> result =
      TrainIntrospectionNet(dataset, options, adam, &net);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(result.status().message(), HasSubstr("in epoch 1 of 3"));
}

TEST(JumpHookTest, SgdMomentumIsResetAndRecreated) {
  torch::manual_seed(7);
  TinyTraining training;
  torch::optim::SGD sgd(training.module->parameters(),
                        torch::optim::SGDOptions(0.1).momentum(0.9));
  JumpHook hook(JumpConfig("reset"), std::make_unique<IntrospectionNet>(4), "");
  TrainingView view{training.module.get(), &sgd, 0, 0, ""};
  ASSERT_TRUE(hook.OnTrainBegin(view).ok());
  for (int64_t step = 1; step <= 11; ++step) {
    const double loss = training.Step(sgd);
    ASSERT_TRUE(std::isfinite(loss));
    view.step = step;
    ASSERT_TRUE(hook.OnStepEnd(view).ok());
    if (step == 10) {
      EXPECT_EQ(sgd.state().size(), 0u);
    }
  }
  EXPECT_EQ(sgd.state().size(), 2u);
  EXPECT_EQ(hook.jumps_done(), 1);
}

TEST(HookConfigTest, BadSectionsNameTheFieldAndTheReason) {
  auto section = [](const std::string& json) {
    google::protobuf::Struct s;
    EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(json, &s).ok());
    return s;
  };
  auto record = [&](const std::string& json) {
    return ParseRecordHookConfig(section(json), "hooks[0].config").status();
  };
  EXPECT_THAT(record("{}").message(),
              HasSubstr("hooks[0].config.t_steps: list at least one step"));
  EXPECT_THAT(record(R"({"t_steps": [100, 3]})").message(),
              HasSubstr("hooks[0].config.t_steps[1]: must be >= 5"));
  EXPECT_THAT(record(R"({"t_steps": [100], "balance_bins": -1})").message(),
              HasSubstr("hooks[0].config.balance_bins: must be in [1, 1000]"));
  EXPECT_THAT(record(R"({"t_steps": [100], "output": "../x.pt"})").message(),
              HasSubstr("hooks[0].config.output: must be a plain file name"));
  EXPECT_THAT(record(R"({"t_steps": [100], "typo": 1})").message(),
              HasSubstr("hooks[0].config.typo"));
  absl::StatusOr<RecordHookConfig> defaults = ParseRecordHookConfig(
      section(R"({"t_steps": [100, 50]})"), "hooks[0].config");
  ASSERT_TRUE(defaults.ok()) << defaults.status();
  EXPECT_EQ(defaults->samples_per_t(), 100000);
  EXPECT_EQ(defaults->balance_bins(), 8);
  EXPECT_EQ(defaults->output(), "introspection_histories.pt");

  const std::string net = Scratch("config") + "/i.pt";
  ASSERT_TRUE(IntrospectionNet(4).Save(net).ok());
  auto jump = [&](const std::string& json) {
    return ParseJumpHookConfig(section(json), "hooks[1].config").status();
  };
  EXPECT_THAT(jump(R"({"jump_steps": [10]})").message(),
              HasSubstr("hooks[1].config.network: missing"));
  EXPECT_THAT(
      jump(R"({"network": "/no/such.pt", "jump_steps": [10]})").message(),
      HasSubstr("hooks[1].config.network: /no/such.pt: no such file"));
  EXPECT_THAT(jump(R"({"network": ")" + net + R"(", "jump_steps": [20, 10]})")
                  .message(),
              HasSubstr("hooks[1].config.jump_steps[1]: steps must increase"));
  EXPECT_THAT(jump(R"({"network": ")" + net +
                   R"(", "jump_steps": [10], "optimizer_state": "zero"})")
                  .message(),
              HasSubstr("hooks[1].config.optimizer_state: unknown optimizer "
                        "state 'zero'"));
  EXPECT_TRUE(
      jump(R"({"network": ")" + net + R"(", "jump_steps": [10]})").ok());
  // The linear baseline needs no network, and refuses one.
  EXPECT_TRUE(jump(R"({"predictor": "linear", "jump_steps": [10]})").ok());
  EXPECT_THAT(jump(R"({"predictor": "linear", "network": ")" + net +
                   R"(", "jump_steps": [10]})")
                  .message(),
              HasSubstr("hooks[1].config.network: predictor 'linear' uses no "
                        "network"));
  EXPECT_THAT(jump(R"({"predictor": "cubic", "jump_steps": [10]})").message(),
              HasSubstr("hooks[1].config.predictor: unknown predictor "
                        "'cubic'; known: network"));
  EXPECT_THAT(CheckOptimizerState("reset", "adagrad", "f").message(),
              HasSubstr("f: reset does not work with optimizer adagrad"));
  EXPECT_TRUE(CheckOptimizerState("keep", "adagrad", "f").ok());
}

TEST(DemoTest, TheTargetIsThePlainRunsBestValidationAndCrossingsUseIt) {
  std::vector<StepEvalRecord> records(5);
  const double val[] = {0.5, 0.7, 0.65, 0.8, 0.8};
  for (int i = 0; i < 5; ++i) {
    records[i].step = 50 * (i + 1);
    records[i].val["accuracy"] = val[i];
    records[i].val["loss"] = 1 - val[i];
    records[i].test["accuracy"] = val[i] - 0.01;  // never used as a target
    records[i].train_seconds = i + 0.5;
  }
  // The best validation accuracy, where it was first reached, and the
  // test accuracy and clock there.
  absl::StatusOr<TargetCrossing> best =
      BestValidation(records, "accuracy", true);
  ASSERT_TRUE(best.ok());
  EXPECT_EQ(best->step, 200);
  EXPECT_EQ(best->value, 0.8);
  EXPECT_EQ(best->test, 0.79);
  EXPECT_EQ(best->train_seconds, 3.5);
  EXPECT_EQ(BestValidation(records, "loss", false)->step, 200);
  EXPECT_EQ(BestValidation(records, "f1", true)->step, -1);
  // A run with jumps: its first evaluation at or past the target.
  EXPECT_EQ(FirstValidationCrossing(records, "accuracy", 0.66, true).step, 100);
  EXPECT_EQ(FirstValidationCrossing(records, "accuracy", 0.8, true).step, 200);
  EXPECT_EQ(FirstValidationCrossing(records, "accuracy", 0.81, true).step, -1);
  EXPECT_EQ(FirstValidationCrossing(records, "loss", 0.31, false).step, 100);
  // The test set alone never makes a crossing.
  std::vector<StepEvalRecord> test_only(1);
  test_only[0].step = 50;
  test_only[0].test["accuracy"] = 0.99;
  EXPECT_EQ(FirstValidationCrossing(test_only, "accuracy", 0.5, true).step, -1);
}

}  // namespace
}  // namespace ouroboros::introspective
