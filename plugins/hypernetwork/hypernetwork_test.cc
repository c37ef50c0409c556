#include "plugins/hypernetwork/hypernetwork.h"

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/optim/adam.h>

#include <map>
#include <string>
#include <tuple>

#include "gtest/gtest.h"
#include "ouroboros/config/config.h"
#include "plugins/hypernetwork/default_config.h"

namespace ouroboros::hypernetwork {
namespace {

const DataSpec kMnistSpec{{1, 28, 28}, 10};

RunConfig ConfigWith(const std::string& model_config_json) {
  std::string json = R"({"model": "hypernetwork",
    "data_config": {"dataset": "fashion_mnist"},
    "optim_config": {"name": "adam", "lr": 0.01},
    "run_config": {"epochs": 1, "batch_size": 4},
    "model_config": )" +
                     model_config_json + "}";
  absl::StatusOr<RunConfig> config = ParseRunConfig(json, "test.json");
  EXPECT_TRUE(config.ok()) << config.status();
  return *config;
}

std::unique_ptr<HypernetworkModel> Build(const std::string& model_config_json,
                                         const DataSpec& spec = kMnistSpec) {
  absl::StatusOr<HypernetworkConfig> config =
      ParseHypernetworkConfig(ConfigWith(model_config_json));
  EXPECT_TRUE(config.ok()) << config.status();
  absl::StatusOr<std::unique_ptr<HypernetworkModel>> model =
      BuildHypernetworkModel(*config, spec);
  EXPECT_TRUE(model.ok()) << model.status();
  return *std::move(model);
}

at::Tensor Parameter(torch::nn::Module& module, const std::string& name) {
  return module.named_parameters()[name];
}

std::map<std::string, std::vector<int64_t>> ShapesOfOrdinaryParameters(
    HypernetworkModel& model) {
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const auto& item : model.module().named_parameters()) {
    const std::string& name = item.key();
    if (name.rfind("generator.", 0) == 0 || name.rfind("embeddings.", 0) == 0 ||
        name.rfind("kernels.", 0) == 0) {
      continue;
    }
    shapes[name] = item.value().sizes().vec();
  }
  return shapes;
}

// (tile_in, tile_out, in_channels, out_channels, kernel_size)
using ShapeCase = std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t>;

class GeneratorShapeTest : public ::testing::TestWithParam<ShapeCase> {
 protected:
  void SetUp() override {
    auto [tile_in, tile_out, in, out, f] = GetParam();
    tile_ = TileShape{3, 5, tile_in, tile_out, f};
    in_ = in;
    out_ = out;
    generator_ = std::make_unique<KernelGenerator>(tile_, owner_);
    embeddings_ = at::randn({TileCount(tile_, out, in), tile_.embedding_dim});
    // Non-zero biases, so that the formula test also checks where they go.
    at::NoGradGuard no_grad;
    Parameter(owner_, "b_in").normal_();
    Parameter(owner_, "b_out").normal_();
  }

  TileShape tile_;
  int64_t in_ = 0;
  int64_t out_ = 0;
  torch::nn::Module owner_;
  std::unique_ptr<KernelGenerator> generator_;
  at::Tensor embeddings_;
};

TEST_P(GeneratorShapeTest, KernelHasTheLayerShape) {
  const int64_t f = tile_.kernel_size;
  EXPECT_EQ(embeddings_.size(0),
            ((out_ + tile_.out_channels - 1) / tile_.out_channels) *
                ((in_ + tile_.in_channels - 1) / tile_.in_channels));
  at::Tensor kernel = generator_->Generate(embeddings_, out_, in_);
  EXPECT_EQ(kernel.sizes(), (at::IntArrayRef{out_, in_, f, f}));
}

// The paper's formula, one tile and one input channel at a time:
// a_i = W_i z + B_i, K_i = <W_out, a_i> + B_out, K_i being the
// (N_out x f x f) slice of input channel i of its tile.
TEST_P(GeneratorShapeTest, KernelFollowsThePaperFormulaTileByTile) {
  const int64_t f = tile_.kernel_size;
  const int64_t in_blocks = (in_ + tile_.in_channels - 1) / tile_.in_channels;
  at::Tensor w_in = Parameter(owner_, "w_in");
  at::Tensor b_in = Parameter(owner_, "b_in");
  at::Tensor w_out = Parameter(owner_, "w_out");
  at::Tensor b_out = Parameter(owner_, "b_out");
  at::Tensor padded =
      at::zeros({embeddings_.size(0) / in_blocks * tile_.out_channels,
                 in_blocks * tile_.in_channels, f, f});
  for (int64_t t = 0; t < embeddings_.size(0); ++t) {
    const int64_t out_block = t / in_blocks;
    const int64_t in_block = t % in_blocks;
    for (int64_t i = 0; i < tile_.in_channels; ++i) {
      at::Tensor a = at::mv(w_in[i], embeddings_[t]) + b_in[i];
      at::Tensor k_i =
          (at::mv(w_out.t(), a) + b_out).view({tile_.out_channels, f, f});
      padded
          .slice(0, out_block * tile_.out_channels,
                 (out_block + 1) * tile_.out_channels)
          .select(1, in_block * tile_.in_channels + i)
          .copy_(k_i);
    }
  }
  at::Tensor expected = padded.slice(0, 0, out_).slice(1, 0, in_);
  at::Tensor kernel = generator_->Generate(embeddings_, out_, in_);
  EXPECT_TRUE(at::allclose(kernel, expected, 1e-5, 1e-5));
}

INSTANTIATE_TEST_SUITE_P(
    Tiles, GeneratorShapeTest,
    ::testing::Values(ShapeCase{16, 16, 16, 16, 7},   // the paper's MNIST layer
                      ShapeCase{16, 16, 32, 48, 3},   // several whole tiles
                      ShapeCase{8, 4, 16, 12, 3},     // non-square tiles
                      ShapeCase{16, 16, 10, 20, 3},   // cropped: 10 of 16 in
                      ShapeCase{3, 5, 7, 11, 1},      // cropped both ways
                      ShapeCase{16, 16, 1, 16, 5}));  // 1 input channel

// d sum(K) / d B_out[o, :, :] counts the kernel entries that B_out[o] feeds:
// one per kept input channel of every tile whose output block keeps o.
TEST(KernelGeneratorTest, CroppedChannelsGetNoGradient) {
  torch::nn::Module owner;
  const TileShape tile{4, 4, 16, 16, 3};
  KernelGenerator generator(tile, owner);
  at::Tensor embeddings = at::randn({2, 4});  // 2 x 1 tiles for 20 x 10
  generator.Generate(embeddings, /*out_channels=*/20, /*in_channels=*/10)
      .sum()
      .backward();
  at::Tensor grad = Parameter(owner, "b_out").grad().view({16, 9});
  at::Tensor expected = at::full({16, 9}, 10.0);
  expected.slice(0, 0, 4) += 10.0;  // output channels 16..19 of block 2
  EXPECT_TRUE(at::equal(grad, expected)) << grad;
}

TEST(KernelGeneratorTest, ParameterCountIsTheFormula) {
  // The paper's MNIST generator: N_z = d = 4, 16 x 16 tiles of 7 x 7.
  EXPECT_EQ(KernelGenerator::ParameterCount(TileShape{4, 4, 16, 16, 7}),
            16 * 4 * 4 + 16 * 4 + 4 * 16 * 49 + 16 * 49);
  torch::nn::Module owner;
  const TileShape tile{3, 5, 8, 4, 3};
  KernelGenerator generator(tile, owner);
  int64_t registered = 0;
  for (const at::Tensor& p : owner.parameters()) registered += p.numel();
  EXPECT_EQ(registered, 8 * 5 * 3 + 8 * 5 + 5 * 4 * 9 + 4 * 9);
  EXPECT_EQ(KernelGenerator::ParameterCount(tile), registered);
}

TEST(HypernetworkModelTest, PaperMnistNetHasThePapersParameterCounts) {
  std::unique_ptr<HypernetworkModel> hyper = Build("{}");
  std::unique_ptr<HypernetworkModel> ordinary =
      Build(R"({"kernels": "ordinary"})");
  // Ha et al.: 4,244 generated-side parameters for the 12,544 of the
  // ordinary 7x7 16->16 conv.
  EXPECT_EQ(hyper->parameter_counts().generated_side, 4244);
  EXPECT_EQ(hyper->parameter_counts().embeddings, 4);
  EXPECT_EQ(hyper->parameter_counts().ordinary_kernels, 12544);
  EXPECT_EQ(ordinary->parameter_counts().generated_side, 12544);
  // conv1 (16 x 1 x 7 x 7 + 16) and the head (16*7*7 x 10 + 10).
  EXPECT_EQ(hyper->parameter_counts().other, 800 + 7850);
  EXPECT_EQ(ordinary->parameter_counts().other, 800 + 7850);
  for (HypernetworkModel* model : {hyper.get(), ordinary.get()}) {
    int64_t all = 0;
    for (const at::Tensor& p : model->module().parameters()) all += p.numel();
    EXPECT_EQ(model->parameter_counts().total(), all);
  }
  EXPECT_EQ(DescribeParameterCounts(hyper->parameter_counts(), true),
            "generated layers 4244 parameters (z 4 + generator 4240) for "
            "12544 ordinary kernel parameters (2.96x fewer); other layers "
            "8650; total 12894");
}

TEST(HypernetworkModelTest, ResnetSharesOneGeneratorAcrossItsConvs) {
  std::unique_ptr<HypernetworkModel> model = Build(
      R"({"architecture": "resnet", "stage_channels": [16, 32],
          "embedding_dim": 8})");
  // Stem 1->16 (one cropped tile), block convs 16->16, 16->16, 16->32,
  // 32->32: 1 + 1 + 1 + 2 + 4 tiles.
  const ParameterCounts& counts = model->parameter_counts();
  EXPECT_EQ(counts.embeddings, 9 * 8);
  EXPECT_EQ(counts.generator, 16 * 8 * 8 + 16 * 8 + 8 * 16 * 9 + 16 * 9);
  EXPECT_EQ(counts.ordinary_kernels, 9 * (16 + 256 + 256 + 512 + 1024));
  ASSERT_EQ(model->generated_layers().size(), 5u);
  std::vector<at::Tensor> kernels = model->Kernels();
  EXPECT_EQ(kernels[0].sizes(), (at::IntArrayRef{16, 1, 3, 3}));
  EXPECT_EQ(kernels[3].sizes(), (at::IntArrayRef{32, 16, 3, 3}));
  EXPECT_EQ(kernels[4].sizes(), (at::IntArrayRef{32, 32, 3, 3}));
  EXPECT_EQ(model->Forward(at::randn({3, 1, 28, 28})).sizes(),
            (at::IntArrayRef{3, 10}));
}

TEST(HypernetworkModelTest, GradientsReachEveryEmbeddingAndTheGenerator) {
  std::unique_ptr<HypernetworkModel> model = Build(
      R"({"architecture": "resnet", "stage_channels": [8, 12],
          "tile_in_channels": 8, "tile_out_channels": 8})");
  at::Tensor loss = model->Loss(model->Forward(at::randn({4, 1, 12, 12})),
                                at::tensor({0, 1, 2, 3}, at::kLong));
  loss.backward();
  for (const char* name :
       {"generator.w_in", "generator.b_in", "generator.w_out",
        "generator.b_out", "embeddings.stem", "embeddings.stage1_block1_conv1",
        "embeddings.stage1_block1_conv2", "embeddings.stage2_block1_conv1",
        "embeddings.stage2_block1_conv2"}) {
    at::Tensor grad = Parameter(model->module(), name).grad();
    ASSERT_TRUE(grad.defined()) << name;
    EXPECT_GT(grad.abs().sum().item<double>(), 0) << name;
  }
}

// An optimizer updates the module's parameters in place; the kernels must
// come from those live tensors, not from a copy taken at construction.
TEST(HypernetworkModelTest, KernelsFollowTheLiveParameters) {
  std::unique_ptr<HypernetworkModel> model = Build("{}");
  {
    at::NoGradGuard no_grad;
    Parameter(model->module(), "generator.w_out").zero_();
    Parameter(model->module(), "generator.b_out").fill_(0.25);
  }
  EXPECT_TRUE(at::equal(model->Kernels()[0], at::full({16, 16, 7, 7}, 0.25)));

  std::unique_ptr<HypernetworkModel> trained = Build("{}");
  const at::Tensor before = trained->Kernels()[0].detach().clone();
  torch::optim::Adam adam(trained->module().parameters(), 0.01);
  at::Tensor x = at::randn({8, 1, 28, 28});
  at::Tensor y = at::arange(8, at::kLong);
  adam.zero_grad();
  trained->Loss(trained->Forward(x), y).backward();
  adam.step();
  EXPECT_FALSE(at::allclose(trained->Kernels()[0], before));
}

// Same architecture: given the generated kernels as its own, the ordinary
// model computes exactly the same function.
TEST(HypernetworkModelTest, OrdinarySwitchGivesTheSameArchitecture) {
  for (const std::string architecture :
       {R"("architecture": "mnist_conv")",
        R"("architecture": "resnet", "stage_channels": [16, 20],
            "blocks_per_stage": 2)"}) {
    SCOPED_TRACE(architecture);
    std::unique_ptr<HypernetworkModel> hyper = Build("{" + architecture + "}");
    std::unique_ptr<HypernetworkModel> ordinary =
        Build("{" + architecture + R"(, "kernels": "ordinary"})");
    EXPECT_TRUE(hyper->generates_kernels());
    EXPECT_FALSE(ordinary->generates_kernels());
    EXPECT_EQ(ShapesOfOrdinaryParameters(*hyper),
              ShapesOfOrdinaryParameters(*ordinary));
    std::vector<at::Tensor> kernels = hyper->Kernels();
    ASSERT_EQ(kernels.size(), ordinary->generated_layers().size());
    {
      at::NoGradGuard no_grad;
      for (size_t i = 0; i < kernels.size(); ++i) {
        const GeneratedLayer& layer = ordinary->generated_layers()[i];
        EXPECT_EQ(layer.name, hyper->generated_layers()[i].name);
        layer.kernel.copy_(kernels[i]);
      }
      auto targets = ordinary->module().named_parameters();
      for (const auto& item : hyper->module().named_parameters()) {
        if (targets.contains(item.key())) {
          targets[item.key()].copy_(item.value());
        }
      }
    }
    at::Tensor x = at::randn({5, 1, 28, 28});
    EXPECT_TRUE(
        at::allclose(hyper->Forward(x), ordinary->Forward(x), 1e-5, 1e-5));
  }
}

// Images with a bright left or right half: both variants learn them.
TEST(HypernetworkModelTest, BothVariantsLearnASimpleImageTask) {
  at::Tensor y = at::arange(64, at::kLong) % 2;
  at::Tensor x = 0.3 * at::randn({64, 1, 12, 12});
  x.slice(3, 0, 6) += y.to(at::kFloat).view({64, 1, 1, 1});
  x.slice(3, 6, 12) += (1 - y).to(at::kFloat).view({64, 1, 1, 1});
  for (const char* kernels : {"generated", "ordinary"}) {
    SCOPED_TRACE(kernels);
    std::unique_ptr<HypernetworkModel> model =
        Build(std::string(R"({"conv_channels": 8, "kernel_size": 3,
          "tile_in_channels": 4, "tile_out_channels": 4, "kernels": ")") +
                  kernels + "\"}",
              DataSpec{{1, 12, 12}, 2});
    torch::optim::Adam adam(model->module().parameters(), 0.01);
    for (int step = 0; step < 40; ++step) {
      adam.zero_grad();
      model->Loss(model->Forward(x), y).backward();
      adam.step();
    }
    at::NoGradGuard no_grad;
    double accuracy =
        model->Forward(x).argmax(1).eq(y).to(at::kFloat).mean().item<double>();
    EXPECT_GT(accuracy, 0.95);
  }
}

TEST(HypernetworkModelTest, DefaultConfigBuildsThePapersMnistNet) {
  absl::StatusOr<RunConfig> config =
      ParseRunConfig(kDefaultConfigJson, "default_config.json");
  ASSERT_TRUE(config.ok()) << config.status();
  ModelContext context{&*config, "default_config.json", kMnistSpec};
  absl::StatusOr<std::unique_ptr<Model>> model = MakeHypernetwork(context);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->Forward(at::randn({5, 1, 28, 28})).sizes(),
            (at::IntArrayRef{5, 10}));
  auto* hyper = dynamic_cast<HypernetworkModel*>(model->get());
  ASSERT_NE(hyper, nullptr);
  EXPECT_EQ(hyper->parameter_counts().generated_side, 4244);
}

TEST(HypernetworkModelTest, RefusesFlatInputsNamingTheDataset) {
  RunConfig config = ConfigWith("{}");
  ModelContext context{&config, "test.json", DataSpec{{16}, 4}};
  EXPECT_EQ(std::string(MakeHypernetwork(context).status().message()),
            "test.json: data_config.dataset: the hypernetwork's conv nets "
            "need images (channels x height x width) and classes; this "
            "dataset gives inputs of shape [16] and 4 classes");
}

TEST(HypernetworkConfigTest, FillsInThePapersDefaults) {
  absl::StatusOr<HypernetworkConfig> config =
      ParseHypernetworkConfig(ConfigWith("{}"));
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->architecture(), "mnist_conv");
  EXPECT_EQ(config->kernels(), "generated");
  EXPECT_EQ(config->embedding_dim(), 4);
  EXPECT_EQ(config->hidden_dim(), 4);
  EXPECT_EQ(config->tile_in_channels(), 16);
  EXPECT_EQ(config->tile_out_channels(), 16);
  EXPECT_EQ(config->kernel_size(), 7);
  EXPECT_EQ(config->conv_channels(), 16);
  absl::StatusOr<HypernetworkConfig> resnet =
      ParseHypernetworkConfig(ConfigWith(R"({"architecture": "resnet"})"));
  ASSERT_TRUE(resnet.ok()) << resnet.status();
  EXPECT_EQ(resnet->kernel_size(), 3);
  EXPECT_EQ(resnet->stage_channels_size(), 3);
  EXPECT_EQ(resnet->blocks_per_stage(), 1);
}

struct BadSection {
  const char* json;
  const char* error;
};

class HypernetworkConfigErrorTest
    : public ::testing::TestWithParam<BadSection> {};

TEST_P(HypernetworkConfigErrorTest, NamesFieldAndReason) {
  RunConfig config = ConfigWith(GetParam().json);
  EXPECT_EQ(std::string(ParseHypernetworkConfig(config).status().message()),
            GetParam().error);
  ModelContext context{&config, "test.json", kMnistSpec};
  EXPECT_EQ(std::string(MakeHypernetwork(context).status().message()),
            std::string("test.json: ") + GetParam().error);
}

INSTANTIATE_TEST_SUITE_P(
    Errors, HypernetworkConfigErrorTest,
    ::testing::Values(
        BadSection{R"({"architecture": "vgg"})",
                   "model_config.architecture: unknown architecture 'vgg'; "
                   "known: mnist_conv, resnet"},
        BadSection{R"({"kernels": "dynamic"})",
                   "model_config.kernels: unknown kind 'dynamic'; known: "
                   "generated, ordinary"},
        BadSection{R"({"embedding_dim": -1})",
                   "model_config.embedding_dim: must be >= 1 (got -1)"},
        BadSection{R"({"tile_out_channels": -16})",
                   "model_config.tile_out_channels: must be >= 1 (got -16)"},
        BadSection{R"({"kernel_size": 4})",
                   "model_config.kernel_size: must be odd, so that padding "
                   "keeps the image size (got 4)"},
        BadSection{R"({"stage_channels": [16]})",
                   "model_config.stage_channels: only for architecture "
                   "resnet (got architecture mnist_conv)"},
        BadSection{R"({"architecture": "resnet", "conv_channels": 8})",
                   "model_config.conv_channels: only for architecture "
                   "mnist_conv (got architecture resnet); resnet uses "
                   "stage_channels"},
        BadSection{R"({"architecture": "resnet", "stage_channels": [8, 0]})",
                   "model_config.stage_channels[1]: must be >= 1 (got 0)"},
        BadSection{
            R"({"tile_size": 16})",
            "model_config.tile_size: unknown field (not in the schema; known: "
            "architecture, kernels, embedding_dim, hidden_dim, "
            "tile_in_channels, tile_out_channels, kernel_size, "
            "conv_channels, stage_channels, blocks_per_stage)"}));

}  // namespace
}  // namespace ouroboros::hypernetwork
