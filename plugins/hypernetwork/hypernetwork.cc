#include "plugins/hypernetwork/hypernetwork.h"

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>

#include <cmath>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "glog/logging.h"
#include "ouroboros/api/plugin_api.h"
#include "ouroboros/base/errors.h"
#include "ouroboros/base/status_macros.h"
#include "ouroboros/config/config.h"
#include "ouroboros/config/config_checks.h"
#include "plugins/hypernetwork/default_config.h"

namespace ouroboros::hypernetwork {
namespace {

constexpr char kMnistConv[] = "mnist_conv";
constexpr char kResnet[] = "resnet";
constexpr char kGenerated[] = "generated";
constexpr char kOrdinary[] = "ordinary";

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

TileShape TileShapeOf(const HypernetworkConfig& config) {
  TileShape tile;
  tile.embedding_dim = config.embedding_dim();
  tile.hidden_dim = config.hidden_dim();
  tile.in_channels = config.tile_in_channels();
  tile.out_channels = config.tile_out_channels();
  tile.kernel_size = config.kernel_size();
  return tile;
}

}  // namespace

int64_t TileCount(const TileShape& tile, int64_t out_channels,
                  int64_t in_channels) {
  return CeilDiv(out_channels, tile.out_channels) *
         CeilDiv(in_channels, tile.in_channels);
}

KernelGenerator::KernelGenerator(const TileShape& tile,
                                 torch::nn::Module& owner)
    : tile_(tile) {
  const int64_t f = tile.kernel_size;
  const int64_t slice = tile.out_channels * f * f;
  // With z ~ N(0, 1) (see AddGeneratedLayer) every a_i component starts as
  // N(0, 1) and every kernel entry with the standard deviation of LibTorch's
  // default conv init for the tile's fan-in N_in*f*f, 1/sqrt(3 fan_in): the
  // generated and the ordinary net start from kernels of the same scale.
  const double kernel_std = 1.0 / std::sqrt(3.0 * tile.in_channels * f * f);
  w_in_ = owner.register_parameter(
      "w_in",
      at::randn({tile.in_channels, tile.hidden_dim, tile.embedding_dim}) /
          std::sqrt(static_cast<double>(tile.embedding_dim)));
  b_in_ = owner.register_parameter(
      "b_in", at::zeros({tile.in_channels, tile.hidden_dim}));
  w_out_ = owner.register_parameter(
      "w_out",
      at::randn({tile.hidden_dim, slice}) *
          (kernel_std / std::sqrt(static_cast<double>(tile.hidden_dim))));
  b_out_ = owner.register_parameter("b_out", at::zeros({slice}));
}

at::Tensor KernelGenerator::GenerateTiles(const at::Tensor& embeddings) const {
  const int64_t tiles = embeddings.size(0);
  const int64_t n_in = tile_.in_channels;
  const int64_t d = tile_.hidden_dim;
  // a[t, i, :] = W_i z_t + B_i for every tile and input channel: one GEMM.
  at::Tensor a = at::addmm(b_in_.reshape({n_in * d}), embeddings,
                           w_in_.reshape({n_in * d, tile_.embedding_dim}).t());
  // K_i = <W_out, a_i> + B_out for every (t, i): a second GEMM.
  return at::addmm(b_out_, a.reshape({tiles * n_in, d}), w_out_)
      .view({tiles, n_in, w_out_.size(1)});
}

at::Tensor KernelGenerator::AssembleKernel(const at::Tensor& tiles,
                                           int64_t out_channels,
                                           int64_t in_channels) const {
  const int64_t out_blocks = CeilDiv(out_channels, tile_.out_channels);
  const int64_t in_blocks = CeilDiv(in_channels, tile_.in_channels);
  const int64_t f = tile_.kernel_size;
  TORCH_CHECK(tiles.size(0) == out_blocks * in_blocks, "expected ",
              out_blocks * in_blocks, " tiles for a ", out_channels, " x ",
              in_channels, " kernel, got ", tiles.size(0));
  // (out block, in block, i, o, f, f) -> (out block, o, in block, i, f, f).
  at::Tensor kernel = tiles
                          .view({out_blocks, in_blocks, tile_.in_channels,
                                 tile_.out_channels, f, f})
                          .permute({0, 3, 1, 2, 4, 5})
                          .reshape({out_blocks * tile_.out_channels,
                                    in_blocks * tile_.in_channels, f, f});
  if (kernel.size(0) != out_channels || kernel.size(1) != in_channels) {
    kernel =
        kernel.slice(0, 0, out_channels).slice(1, 0, in_channels).contiguous();
  }
  return kernel;
}

at::Tensor KernelGenerator::Generate(const at::Tensor& embeddings,
                                     int64_t out_channels,
                                     int64_t in_channels) const {
  return AssembleKernel(GenerateTiles(embeddings), out_channels, in_channels);
}

int64_t KernelGenerator::ParameterCount(const TileShape& tile) {
  const int64_t slice = tile.out_channels * tile.kernel_size * tile.kernel_size;
  return tile.in_channels * tile.hidden_dim * tile.embedding_dim +
         tile.in_channels * tile.hidden_dim + tile.hidden_dim * slice + slice;
}

HypernetworkModel::HypernetworkModel(const HypernetworkConfig& config,
                                     int64_t kernel_size)
    : module_(std::make_shared<torch::nn::Module>()),
      kernel_size_(kernel_size) {
  if (config.kernels() == kOrdinary) {
    kernels_ = module_->register_module("kernels",
                                        std::make_shared<torch::nn::Module>());
  } else {
    auto generator = module_->register_module(
        "generator", std::make_shared<torch::nn::Module>());
    generator_ =
        std::make_unique<KernelGenerator>(TileShapeOf(config), *generator);
    embeddings_ = module_->register_module(
        "embeddings", std::make_shared<torch::nn::Module>());
  }
}

HypernetworkModel::~HypernetworkModel() = default;

int HypernetworkModel::AddGeneratedLayer(const std::string& name,
                                         int64_t in_channels,
                                         int64_t out_channels) {
  GeneratedLayer layer{name, in_channels, out_channels, {}, {}};
  const int64_t f = kernel_size_;
  if (generator_ != nullptr) {
    const TileShape& tile = generator_->tile();
    layer.embeddings = embeddings_->register_parameter(
        name, at::randn({TileCount(tile, out_channels, in_channels),
                         tile.embedding_dim}));
  } else {
    // LibTorch's default conv init (kaiming_uniform_ with a = sqrt(5)).
    const double bound =
        1.0 / std::sqrt(static_cast<double>(in_channels * f * f));
    layer.kernel = kernels_->register_parameter(
        name,
        at::empty({out_channels, in_channels, f, f}).uniform_(-bound, bound));
  }
  layers_.push_back(std::move(layer));
  return static_cast<int>(layers_.size()) - 1;
}

std::vector<at::Tensor> HypernetworkModel::Kernels() const {
  std::vector<at::Tensor> kernels;
  if (generator_ == nullptr) {
    for (const GeneratedLayer& layer : layers_) kernels.push_back(layer.kernel);
    return kernels;
  }
  std::vector<at::Tensor> embeddings;
  for (const GeneratedLayer& layer : layers_) {
    embeddings.push_back(layer.embeddings);
  }
  at::Tensor tiles = generator_->GenerateTiles(
      embeddings.size() == 1 ? embeddings[0] : at::cat(embeddings));
  int64_t first = 0;
  for (const GeneratedLayer& layer : layers_) {
    const int64_t count = layer.embeddings.size(0);
    kernels.push_back(generator_->AssembleKernel(
        tiles.narrow(0, first, count), layer.out_channels, layer.in_channels));
    first += count;
  }
  return kernels;
}

void HypernetworkModel::CountParameters() {
  counts_ = ParameterCounts{};
  for (const auto& item : module_->named_parameters()) {
    const int64_t n = item.value().numel();
    if (absl::StartsWith(item.key(), "generator.")) {
      counts_.generator += n;
    } else if (absl::StartsWith(item.key(), "embeddings.")) {
      counts_.embeddings += n;
    } else if (absl::StartsWith(item.key(), "kernels.")) {
      counts_.generated_side += n;
    } else {
      counts_.other += n;
    }
  }
  counts_.generated_side += counts_.generator + counts_.embeddings;
  for (const GeneratedLayer& layer : layers_) {
    counts_.ordinary_kernels +=
        layer.out_channels * layer.in_channels * kernel_size_ * kernel_size_;
  }
}

namespace {

// The paper's MNIST net: conv f x f C_in -> C (ordinary), ReLU, 2x2 max
// pool, conv f x f C -> C (generated, no bias, as the paper's 12,544 counts
// it), ReLU, 2x2 max pool, linear head.
class MnistConvNet : public HypernetworkModel {
 public:
  MnistConvNet(const HypernetworkConfig& config, const DataSpec& data)
      : HypernetworkModel(config, config.kernel_size()),
        padding_(config.kernel_size() / 2) {
    const int64_t channels = config.conv_channels();
    conv1_ = module_->register_module(
        "conv1", torch::nn::Conv2d(
                     torch::nn::Conv2dOptions(data.input_shape[0], channels,
                                              config.kernel_size())
                         .padding(padding_)));
    conv2_ = AddGeneratedLayer("conv2", channels, channels);
    const int64_t features =
        channels * (data.input_shape[1] / 4) * (data.input_shape[2] / 4);
    head_ = module_->register_module(
        "head", torch::nn::Linear(features, data.num_classes));
    CountParameters();
  }

  at::Tensor Forward(const at::Tensor& inputs) override {
    const std::vector<at::Tensor> kernels = Kernels();
    at::Tensor h = at::max_pool2d(at::relu(conv1_->forward(inputs)), {2, 2});
    h = at::max_pool2d(
        at::relu(at::conv2d(h, kernels[conv2_], {}, 1, padding_)), {2, 2});
    return head_->forward(h.flatten(1));
  }

 private:
  int64_t padding_;
  torch::nn::Conv2d conv1_{nullptr};
  int conv2_ = 0;
  torch::nn::Linear head_{nullptr};
};

// A small ResNet whose f x f convs (the stem and both convs of every residual
// block) all come from the one shared generator: stem conv + batch norm,
// stages of residual blocks (conv-BN-ReLU-conv-BN + shortcut, ReLU), 1x1
// projection shortcuts (ordinary) where the shape changes, global average
// pool, linear head.
class ResidualNet : public HypernetworkModel {
 public:
  ResidualNet(const HypernetworkConfig& config, const DataSpec& data)
      : HypernetworkModel(config, config.kernel_size()),
        padding_(config.kernel_size() / 2) {
    int64_t in = config.stage_channels(0);
    // The stem is generated too, from one tile cropped to the input's
    // channels: every f x f conv of the net comes from the one generator.
    stem_ = AddGeneratedLayer("stem", data.input_shape[0], in);
    stem_bn_ = module_->register_module("stem_bn", torch::nn::BatchNorm2d(in));
    for (int stage = 0; stage < config.stage_channels_size(); ++stage) {
      const int64_t out = config.stage_channels(stage);
      for (int b = 0; b < config.blocks_per_stage(); ++b) {
        const std::string name =
            absl::StrCat("stage", stage + 1, "_block", b + 1);
        Block block;
        block.stride = stage > 0 && b == 0 ? 2 : 1;
        block.conv1 = AddGeneratedLayer(name + "_conv1", in, out);
        block.conv2 = AddGeneratedLayer(name + "_conv2", out, out);
        block.bn1 = module_->register_module(name + "_bn1",
                                             torch::nn::BatchNorm2d(out));
        block.bn2 = module_->register_module(name + "_bn2",
                                             torch::nn::BatchNorm2d(out));
        if (block.stride != 1 || in != out) {
          block.shortcut = module_->register_module(
              name + "_shortcut",
              torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 1)
                                    .stride(block.stride)
                                    .bias(false)));
          block.shortcut_bn = module_->register_module(
              name + "_shortcut_bn", torch::nn::BatchNorm2d(out));
        }
        blocks_.push_back(block);
        in = out;
      }
    }
    head_ = module_->register_module("head",
                                     torch::nn::Linear(in, data.num_classes));
    CountParameters();
  }

  at::Tensor Forward(const at::Tensor& inputs) override {
    const std::vector<at::Tensor> kernels = Kernels();
    at::Tensor h = at::relu(
        stem_bn_->forward(at::conv2d(inputs, kernels[stem_], {}, 1, padding_)));
    for (Block& block : blocks_) {
      at::Tensor y = at::relu(block.bn1->forward(
          at::conv2d(h, kernels[block.conv1], {}, block.stride, padding_)));
      y = block.bn2->forward(
          at::conv2d(y, kernels[block.conv2], {}, 1, padding_));
      at::Tensor shortcut =
          block.shortcut.is_empty()
              ? h
              : block.shortcut_bn->forward(block.shortcut->forward(h));
      h = at::relu(y + shortcut);
    }
    return head_->forward(h.mean({2, 3}));
  }

 private:
  struct Block {
    int64_t stride = 1;
    int conv1 = 0;
    int conv2 = 0;
    torch::nn::BatchNorm2d bn1{nullptr};
    torch::nn::BatchNorm2d bn2{nullptr};
    torch::nn::Conv2d shortcut{nullptr};
    torch::nn::BatchNorm2d shortcut_bn{nullptr};
  };

  int64_t padding_;
  int stem_ = 0;
  torch::nn::BatchNorm2d stem_bn_{nullptr};
  std::vector<Block> blocks_;
  torch::nn::Linear head_{nullptr};
};

absl::Status ValidateHypernetworkConfig(const RunConfig& config) {
  return ParseHypernetworkConfig(config).status();
}

}  // namespace

void FillDerivedHypernetworkDefaults(HypernetworkConfig* config,
                                     const RunConfig&) {
  if (!config->has_hidden_dim()) {
    config->set_hidden_dim(config->embedding_dim());
  }
  const bool mnist_conv = config->architecture() == kMnistConv;
  if (!config->has_kernel_size()) {
    config->set_kernel_size(mnist_conv ? 7 : 3);
  }
  if (mnist_conv) {
    if (!config->has_conv_channels()) config->set_conv_channels(16);
    return;
  }
  if (config->stage_channels().empty()) {
    for (int channels : {16, 32, 64}) config->add_stage_channels(channels);
  }
  if (!config->has_blocks_per_stage()) config->set_blocks_per_stage(1);
}

absl::StatusOr<HypernetworkConfig> ParseHypernetworkConfig(
    const RunConfig& config) {
  ASSIGN_OR_RETURN(
      HypernetworkConfig parsed,
      ParseSection<HypernetworkConfig>(config.model_config(), "model_config"));
  const bool mnist_conv = parsed.architecture() == kMnistConv;
  RETURN_IF_ERROR(CheckOneOf("model_config.architecture", parsed.architecture(),
                             {kMnistConv, kResnet}, "architecture"));
  RETURN_IF_ERROR(CheckOneOf("model_config.kernels", parsed.kernels(),
                             {kGenerated, kOrdinary}, "kind"));
  // Settings of the other architecture would silently do nothing.
  if (mnist_conv &&
      (parsed.stage_channels_size() > 0 || parsed.has_blocks_per_stage())) {
    return ConfigFieldError(
        parsed.stage_channels_size() > 0 ? "model_config.stage_channels"
                                         : "model_config.blocks_per_stage",
        "only for architecture resnet (got architecture mnist_conv)");
  }
  if (!mnist_conv && parsed.has_conv_channels()) {
    return ConfigFieldError(
        "model_config.conv_channels",
        "only for architecture mnist_conv (got architecture resnet); resnet "
        "uses stage_channels");
  }
  FillDerivedHypernetworkDefaults(&parsed, config);
  for (auto [value, field] :
       {std::pair<int64_t, const char*>{parsed.embedding_dim(),
                                        "embedding_dim"},
        {parsed.hidden_dim(), "hidden_dim"},
        {parsed.tile_in_channels(), "tile_in_channels"},
        {parsed.tile_out_channels(), "tile_out_channels"},
        {parsed.kernel_size(), "kernel_size"},
        {mnist_conv ? parsed.conv_channels() : parsed.blocks_per_stage(),
         mnist_conv ? "conv_channels" : "blocks_per_stage"}}) {
    RETURN_IF_ERROR(
        CheckAtLeast(absl::StrCat("model_config.", field), value, 1));
  }
  if (parsed.kernel_size() % 2 == 0) {
    return ConfigFieldError(
        "model_config.kernel_size",
        absl::StrCat("must be odd, so that padding keeps the image size (got ",
                     parsed.kernel_size(), ")"));
  }
  for (int i = 0; i < parsed.stage_channels_size(); ++i) {
    RETURN_IF_ERROR(
        CheckAtLeast(absl::StrCat("model_config.stage_channels[", i, "]"),
                     parsed.stage_channels(i), 1));
  }
  return parsed;
}

absl::StatusOr<std::unique_ptr<HypernetworkModel>> BuildHypernetworkModel(
    const HypernetworkConfig& config, const DataSpec& data) {
  const std::vector<int64_t>& shape = data.input_shape;
  if (shape.size() != 3 || data.num_classes < 1) {
    return ConfigFieldError(
        "data_config.dataset",
        absl::StrCat("the hypernetwork's conv nets need images (channels x "
                     "height x width) and classes; this dataset gives inputs "
                     "of shape [",
                     absl::StrJoin(shape, ", "), "] and ", data.num_classes,
                     " classes"));
  }
  if (config.architecture() == kMnistConv && (shape[1] < 4 || shape[2] < 4)) {
    return ConfigFieldError(
        "data_config.dataset",
        absl::StrCat("mnist_conv pools twice by 2, so images must be at least "
                     "4 x 4 (got ",
                     shape[1], " x ", shape[2], ")"));
  }
  std::unique_ptr<HypernetworkModel> model;
  absl::Status status = CallTorch("building the hypernetwork", [&] {
    if (config.architecture() == kMnistConv) {
      model = std::make_unique<MnistConvNet>(config, data);
    } else {
      model = std::make_unique<ResidualNet>(config, data);
    }
  });
  if (!status.ok()) return status;
  return model;
}

std::string DescribeParameterCounts(const ParameterCounts& counts,
                                    bool generates_kernels) {
  std::string generated =
      generates_kernels
          ? absl::StrFormat(
                "generated layers %d parameters (z %d + generator %d) for %d "
                "ordinary kernel parameters (%.2fx fewer)",
                counts.generated_side, counts.embeddings, counts.generator,
                counts.ordinary_kernels,
                static_cast<double>(counts.ordinary_kernels) /
                    counts.generated_side)
          : absl::StrFormat(
                "generated layers %d parameters as ordinary kernels",
                counts.generated_side);
  return absl::StrFormat("%s; other layers %d; total %d", generated,
                         counts.other, counts.total());
}

absl::StatusOr<std::unique_ptr<Model>> MakeHypernetwork(
    const ModelContext& context) {
  absl::StatusOr<HypernetworkConfig> config =
      ParseHypernetworkConfig(*context.config);
  if (!config.ok()) return WithContext(config.status(), context.config_source);
  absl::StatusOr<std::unique_ptr<HypernetworkModel>> model =
      BuildHypernetworkModel(*config, context.data);
  if (!model.ok()) return WithContext(model.status(), context.config_source);
  LOG(INFO) << "hypernetwork " << config->architecture() << " ("
            << config->kernels() << " kernels): "
            << DescribeParameterCounts((*model)->parameter_counts(),
                                       (*model)->generates_kernels());
  return std::unique_ptr<Model>(std::move(*model));
}

OUROBOROS_REGISTER_MODEL(
    "hypernetwork",
    "Static hypernetwork (Ha et al. 2017): one shared generator makes the "
    "conv kernels from per-tile embeddings",
    MakeHypernetwork, kDefaultConfigJson, ValidateHypernetworkConfig,
    SectionDefaultsOf<HypernetworkConfig>(FillDerivedHypernetworkDefaults));

}  // namespace ouroboros::hypernetwork
