// Static hypernetworks (Ha, Dai & Le, "HyperNetworks", ICLR 2017), registered
// as model `hypernetwork`.
//
// A small generator network produces the kernels of other layers. Each
// generated kernel (out x in x f x f) is cut into tiles of N_out x N_in
// channels; tile t has a learned embedding z_t in R^{N_z}, and ONE two-layer
// linear generator, shared by every generated layer, turns it into the tile:
//   a_i = W_i z_t + B_i            (i = 1..N_in, a_i in R^d)
//   K_i = <W_out, a_i> + B_out     (K_i: the N_out x f x f slice of input i)
// All tiles of all generated layers come from one batched generator call.
//
// model_config (hypernetwork.proto): {"architecture": "mnist_conv",
//   "kernels": "generated", "embedding_dim": 4, "tile_in_channels": 16, ...}
// "kernels": "ordinary" learns the same layers' kernels directly: the
// baseline with the same architecture.
#ifndef PLUGINS_HYPERNETWORK_HYPERNETWORK_H_
#define PLUGINS_HYPERNETWORK_HYPERNETWORK_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "ouroboros/api/interfaces.h"
#include "plugins/hypernetwork/hypernetwork.pb.h"

namespace ouroboros::hypernetwork {

// What one generator call makes per tile, and from what.
struct TileShape {
  int64_t embedding_dim = 4;  // N_z
  int64_t hidden_dim = 4;     // d
  int64_t in_channels = 16;   // N_in
  int64_t out_channels = 16;  // N_out
  int64_t kernel_size = 7;    // f
};

// Tiles of an (out_channels x in_channels) kernel:
// ceil(out / N_out) * ceil(in / N_in).
int64_t TileCount(const TileShape& tile, int64_t out_channels,
                  int64_t in_channels);

// The shared generator: W_in (N_in x d x N_z), B_in (N_in x d),
// W_out (d x N_out*f*f) and B_out (N_out*f*f), registered as parameters
// w_in, b_in, w_out, b_out of the module given to the constructor.
class KernelGenerator {
 public:
  KernelGenerator(const TileShape& tile, torch::nn::Module& owner);

  // Every tile of `embeddings` (tiles x N_z) in one batched call:
  // tiles x N_in x (N_out*f*f), row i of tile t being K_i of z_t.
  at::Tensor GenerateTiles(const at::Tensor& embeddings) const;
  // The out_channels x in_channels x f x f kernel from its
  // TileCount(out_channels, in_channels) tiles, ordered output block major
  // (tile t covers output block t / in_blocks, input block t % in_blocks).
  // Channels beyond out_channels/in_channels are cropped.
  at::Tensor AssembleKernel(const at::Tensor& tiles, int64_t out_channels,
                            int64_t in_channels) const;
  // GenerateTiles then AssembleKernel.
  at::Tensor Generate(const at::Tensor& embeddings, int64_t out_channels,
                      int64_t in_channels) const;

  const TileShape& tile() const { return tile_; }
  // N_in*d*N_z + N_in*d + d*N_out*f*f + N_out*f*f.
  static int64_t ParameterCount(const TileShape& tile);

 private:
  TileShape tile_;
  // Handles to the owner's registered parameters (the same tensors).
  at::Tensor w_in_;
  at::Tensor b_in_;
  at::Tensor w_out_;
  at::Tensor b_out_;
};

struct ParameterCounts {
  // The parameters behind the generated layers' kernels: every z plus the
  // generator, or with ordinary kernels the kernels themselves.
  int64_t generated_side = 0;
  int64_t embeddings = 0;  // of generated_side; 0 for ordinary kernels
  int64_t generator = 0;   // of generated_side; 0 for ordinary kernels
  // Sum of out*in*f*f over the generated layers: their ordinary size.
  int64_t ordinary_kernels = 0;
  // Every other parameter (ordinary convs, batch norms, head).
  int64_t other = 0;
  int64_t total() const { return generated_side + other; }
};

// One conv layer whose kernel the generator makes.
struct GeneratedLayer {
  std::string name;
  int64_t in_channels = 0;
  int64_t out_channels = 0;
  at::Tensor embeddings;  // generated kernels: its tiles' z, tiles x N_z
  at::Tensor kernel;      // ordinary kernels: out x in x f x f
};

// The primary network (mnist_conv or resnet) with its generated layers.
class HypernetworkModel : public Model {
 public:
  ~HypernetworkModel() override;
  torch::nn::Module& module() override { return *module_; }

  // The kernels of the generated layers in forward order, computed now from
  // the live parameters (one generator call for all of them).
  std::vector<at::Tensor> Kernels() const;
  const std::vector<GeneratedLayer>& generated_layers() const {
    return layers_;
  }
  bool generates_kernels() const { return generator_ != nullptr; }
  const ParameterCounts& parameter_counts() const { return counts_; }

 protected:
  HypernetworkModel(const HypernetworkConfig& config, int64_t kernel_size);
  // Adds a generated layer (parameter embeddings.<name> or kernels.<name>);
  // returns its index in Kernels().
  int AddGeneratedLayer(const std::string& name, int64_t in_channels,
                        int64_t out_channels);
  // Fills parameter_counts(); call when every layer exists.
  void CountParameters();

  std::shared_ptr<torch::nn::Module> module_;

 private:
  int64_t kernel_size_;
  std::shared_ptr<torch::nn::Module> embeddings_;  // generated kernels
  std::shared_ptr<torch::nn::Module> kernels_;     // ordinary kernels
  std::unique_ptr<KernelGenerator> generator_;
  std::vector<GeneratedLayer> layers_;
  ParameterCounts counts_;
};

// Parses and validates model_config ("model_config.<field>: reason") and
// fills in the defaults of unset fields.
absl::StatusOr<HypernetworkConfig> ParseHypernetworkConfig(
    const RunConfig& config);

// The defaults that depend on other fields: hidden_dim (embedding_dim),
// kernel_size (7 mnist_conv, 3 resnet), and the architecture's own sizes
// (conv_channels 16; stage_channels [16, 32, 64], blocks_per_stage 1).
void FillDerivedHypernetworkDefaults(HypernetworkConfig* config,
                                     const RunConfig& run_config);

// The model for a parsed config; InvalidArgument if the data does not fit
// (inputs must be images: channels x height x width).
absl::StatusOr<std::unique_ptr<HypernetworkModel>> BuildHypernetworkModel(
    const HypernetworkConfig& config, const DataSpec& data);

// "generated side 4244 parameters (z 4 + generator 4240) for 12544 ordinary
// kernel parameters (2.96x fewer); other layers 8650; total 12894".
std::string DescribeParameterCounts(const ParameterCounts& counts,
                                    bool generates_kernels);

// The registered factory: parses, builds, logs the parameter counts.
absl::StatusOr<std::unique_ptr<Model>> MakeHypernetwork(
    const ModelContext& context);

}  // namespace ouroboros::hypernetwork

#endif  // PLUGINS_HYPERNETWORK_HYPERNETWORK_H_
