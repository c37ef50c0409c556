// Continual learning with hypernetworks (von Oswald, Henning, Grewe &
// Sacramento, ICLR 2020), registered as model `continual`, with its
// baselines: fine-tuning, online EWC and joint (multitask) training.
//
// The main network (an MLP or the MNIST conv net) is written as a function
// of one flat weight vector, so that the same network runs on weights a
// hypernetwork generated for a task (method hnet) or on weights of its own
// (finetune, ewc):
//
//   MainNetwork net = *MainNetwork::Make(config, data_spec, outputs);
//   at::Tensor logits = net.Forward(images, flat_weights);  // B x outputs
//
// A TaskHypernetwork h maps a task embedding e_t to that flat vector, in one
// call for every row of embeddings (full), or chunk by chunk from [e_t, c_i]
// (chunked, with learned chunk embeddings c_i):
//
//   at::Tensor weights = hnet.Generate(embeddings);  // rows x num_outputs
//
// The run trains task after task (data sources `permuted` and `split`, one
// task per Trainer epoch). After each task every task so far is evaluated
// on validation and test; the run ends with continual.json in its directory
// (ContinualReport below) and figures of the accuracy matrix.
#ifndef PLUGINS_HYPERNETWORK_CONTINUAL_H_
#define PLUGINS_HYPERNETWORK_CONTINUAL_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "ouroboros/api/interfaces.h"
#include "plugins/hypernetwork/hypernetwork.pb.h"

namespace ouroboros::hypernetwork {

inline constexpr char kContinualModel[] = "continual";
// In the run directory when a continual run ends.
inline constexpr char kContinualReportFile[] = "continual.json";

// One weight tensor of the main network inside the flat vector.
struct WeightSlot {
  std::string name;
  std::vector<int64_t> shape;
  int64_t offset = 0;
  int64_t size = 0;
  int64_t fan_in = 0;
};

class MainNetwork {
 public:
  // `outputs`: the output layer's width (the task's classes, or every
  // task's for per-task heads).
  static absl::StatusOr<MainNetwork> Make(const ContinualConfig& config,
                                          const DataSpec& data,
                                          int64_t outputs);

  int64_t num_weights() const { return num_weights_; }
  const std::vector<WeightSlot>& slots() const { return slots_; }
  // 1/sqrt(fan_in) for every weight: the scale of LibTorch's default init.
  at::Tensor InitScale() const;
  // A fresh flat vector as LibTorch initialises Linear and Conv2d layers:
  // U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases.
  at::Tensor Initialize(at::Generator& generator) const;
  // Logits (B x outputs) of `inputs` (B x input_shape) on `weights`
  // (num_weights()); differentiable in both.
  at::Tensor Forward(const at::Tensor& inputs, const at::Tensor& weights) const;

 private:
  MainNetwork() = default;
  void Add(const std::string& name, std::vector<int64_t> shape, int64_t fan_in);

  bool conv_ = false;
  std::vector<int64_t> input_shape_;
  int64_t padding_ = 0;
  std::vector<WeightSlot> slots_;
  int64_t num_weights_ = 0;
};

// h(e): the task-conditioned hypernetwork, its parameters registered in
// `owner` (hnet_layer<i>_weight / _bias, hnet_chunk_embeddings).
class TaskHypernetwork {
 public:
  // num_outputs: the main network's weight count (chunk_size must divide
  // it when chunked).
  TaskHypernetwork(const ContinualConfig& config, int64_t num_outputs,
                   torch::nn::Module& owner);

  // rows x num_outputs for embeddings (rows x task_embedding_dim), one call.
  at::Tensor Generate(const at::Tensor& embeddings) const;
  int64_t num_outputs() const { return num_outputs_; }
  bool chunked() const { return chunk_size_ > 0; }

 private:
  int64_t num_outputs_;
  int64_t chunk_size_;
  // Linear layers, ReLU between; chunked: the first takes [e, c].
  std::vector<at::Tensor> weights_;
  std::vector<at::Tensor> biases_;
  at::Tensor chunk_embeddings_;  // chunks x chunk_embedding_dim
};

// beta / n * sum_k ||generated[k] - targets[k]||^2 over the n rows: the
// output regulariser of one step (rows: the earlier tasks regularised).
at::Tensor OutputRegularizer(const at::Tensor& generated,
                             const at::Tensor& targets, double beta);

// For each sample, the task whose logits have the lowest predictive entropy
// (logits: tasks x B x classes): B task indices.
at::Tensor InferTaskByEntropy(const at::Tensor& logits);

// Parses and checks model_config (and that the data is a task sequence it
// can learn). Errors read "<field.path>: reason".
absl::StatusOr<ContinualConfig> ParseContinualConfig(const RunConfig& config);

absl::StatusOr<std::unique_ptr<Model>> MakeContinualModel(
    const ModelContext& context);

}  // namespace ouroboros::hypernetwork

#endif  // PLUGINS_HYPERNETWORK_CONTINUAL_H_
