// The introspection network I (Sinha et al. 2017): one small MLP applied to
// every weight on its own, 4 -> hidden (ReLU) -> 1, that maps the weight's
// normalised history (weight_history.h) to its normalised move from w(t) to
// w(2t). Registered as model `introspective`, whose default config runs the
// whole demo (pipeline introspective_demo).
//
//   IntrospectionNet net(40);
//   absl::StatusOr<IntrospectionTrainResult> r = TrainIntrospectionNet(
//       dataset, options, optimizer, &net);
//   net.Save(run_dir + "/introspection_net.pt");
//   // Later, in any run (hook introspection_jump):
//   at::Tensor w2t = PredictWeights(*net, {w0, w04, w07, wt}, layout);
#ifndef PLUGINS_INTROSPECTIVE_INTROSPECTION_NET_H_
#define PLUGINS_INTROSPECTIVE_INTROSPECTION_NET_H_

#include <ATen/core/Tensor.h>

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "ouroboros/api/interfaces.h"
#include "plugins/introspective/introspective.pb.h"
#include "plugins/introspective/weight_history.h"

namespace ouroboros::introspective {

inline constexpr int64_t kHistoryInputs = 4;

class IntrospectionNet {
 public:
  // LibTorch's default Linear initialisation, from the global generator.
  // `inputs`: 4 (the history) or 5 (with Adam's direction).
  explicit IntrospectionNet(int64_t hidden_size,
                            int64_t inputs = kHistoryInputs);
  ~IntrospectionNet();

  // N x 4 -> N, recording gradients (training).
  at::Tensor Forward(const at::Tensor& inputs) const;
  // N x 4 -> N without gradients: one batched pass, cut into cache-sized
  // chunks spread over the intra-op threads.
  at::Tensor Predict(const at::Tensor& inputs) const;

  // Parameters fc1.weight (hidden x 4), fc1.bias, fc2.weight (1 x hidden),
  // fc2.bias.
  torch::nn::Module& module() { return *module_; }
  int64_t hidden_size() const { return hidden_size_; }
  // 5: the net reads Adam's direction beside the history.
  int64_t inputs() const { return inputs_; }

  // A torch-pickled dict of the four parameters (torch.load in Python).
  absl::Status Save(const std::string& path) const;
  // InvalidArgument naming the file if it is not such a dict.
  static absl::StatusOr<std::unique_ptr<IntrospectionNet>> Load(
      const std::string& path);

 private:
  int64_t hidden_size_;
  int64_t inputs_;
  std::shared_ptr<torch::nn::Module> module_;
  at::Tensor w1_, b1_, w2_, b2_;
};

// w(2t) of every weight, predicted from its snapshots at 0, 0.4t, 0.7t, t
// (and, for a 5-input net, Adam's direction at t): w(t) + c_move * I(x)
// (weight_history.h), one batched Predict.
at::Tensor PredictWeights(const IntrospectionNet& net,
                          const std::array<at::Tensor, 4>& history,
                          const ParameterLayout& layout,
                          const at::Tensor& direction = at::Tensor());

// The nowcasting papers' baseline (issue #28): each weight's least-squares
// line through its values `history` at `steps`, evaluated at `target_step`;
// a fixed weighted sum of the four snapshots (for steps 0, 0.4t, 0.7t, t
// and target 2t about -1.164, -0.087, 0.721, 1.530).
at::Tensor ExtrapolateLinearly(const std::array<at::Tensor, 4>& history,
                               const std::array<int64_t, 4>& steps,
                               int64_t target_step);

struct IntrospectionTrainOptions {
  int64_t epochs = 8;
  int64_t batch_size = 512;
  std::string loss = "l1";  // or mse
  double val_fraction = 0.1;
  uint64_t seed = 1;
};

// Mean absolute errors (of the normalised moves) on the held-out rows.
struct IntrospectionTrainResult {
  int64_t train_rows = 0;
  int64_t val_rows = 0;
  int64_t steps = 0;
  double val_error = 0;      // I
  double no_move_error = 0;  // predicting w(2t) = w(t)
  double linear_error = 0;   // w(2t) = w(t) + (w(t) - w(0))
  double last_train_loss = 0;
};

// Trains `net` on `dataset` with `optimizer` (built over
// net->module().parameters()); `on_epoch(epoch, train_loss, val_error)` is
// called after every epoch (may be empty).
absl::StatusOr<IntrospectionTrainResult> TrainIntrospectionNet(
    const HistoryDataset& dataset, const IntrospectionTrainOptions& options,
    torch::optim::Optimizer& optimizer, IntrospectionNet* net,
    const std::function<void(int64_t, double, double)>& on_epoch = {});

// The IntrospectionNet inside a model built by model `introspective`'s
// factory, or nullptr if `model` is another model.
IntrospectionNet* IntrospectionNetOf(Model& model);

// model_config of model `introspective`, checked ("model_config.<field>:
// reason") and with defaults filled in.
absl::StatusOr<IntrospectionNetConfig> ParseIntrospectionNetConfig(
    const RunConfig& config);

}  // namespace ouroboros::introspective

#endif  // PLUGINS_INTROSPECTIVE_INTROSPECTION_NET_H_
