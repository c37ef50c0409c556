// Weight histories for introspection: flat snapshots of every weight of a
// model, the normalised per-weight features the introspection network reads,
// and the balanced history dataset it trains on.
//
//   ParameterLayout layout = LayoutOf(module);
//   at::Tensor w0 = Snapshot(module);            // all weights, one copy
//   ...                                          // snapshots at 0.4t, 0.7t,
//   HistoryFeatures f = ComputeFeatures({w0, w04, w07, wt}, layout);
//   // f.inputs: weights x 4; w(2t) is predicted as wt + f.move_scale * I(x)
//
// Normalisation (per parameter tensor, so that layers and networks of any
// scale look alike): with c_move = RMS over the tensor of w(t) - w(0) and
// c_pos = RMS over the tensor of w(t),
//   x = [(w(0) - w(t)) / c_move, (w(0.4t) - w(t)) / c_move,
//        (w(0.7t) - w(t)) / c_move, w(t) / c_pos]
//   target = (w(2t) - w(t)) / c_move.
// A network that outputs 0 leaves every weight where it is. With optimizer
// features (issue #28), a fifth column: the step Adam would take at t in
// units of its learning rate, m_hat / (sqrt(v_hat) + eps) (AdamDirection),
// dimensionless already.
#ifndef PLUGINS_INTROSPECTIVE_WEIGHT_HISTORY_H_
#define PLUGINS_INTROSPECTIVE_WEIGHT_HISTORY_H_

#include <ATen/core/Tensor.h>
#include <ATen/core/ivalue.h>

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace torch::nn {
class Module;
}  // namespace torch::nn
namespace torch::optim {
class Optimizer;
}  // namespace torch::optim

namespace ouroboros::introspective {

// Where each parameter of a module lives in its flat snapshot (the order of
// module.parameters()).
struct ParameterLayout {
  std::vector<std::string> names;
  std::vector<int64_t> sizes;  // numel of each
  at::Tensor tensor_of;        // int64, one entry per weight: its tensor
  int64_t total = 0;
};

ParameterLayout LayoutOf(torch::nn::Module& module);

// Every parameter, flattened and concatenated (float32, a copy).
at::Tensor Snapshot(torch::nn::Module& module);

// Copies a flat vector (as Snapshot makes) into the live parameters, without
// recording gradients; the parameters stay the same tensors.
absl::Status WriteSnapshot(const at::Tensor& flat, torch::nn::Module& module);

// `value` torch-pickled (torch.load reads it) into `path`, written
// atomically: snapshots, history datasets and introspection networks.
absl::Status SavePickled(const c10::IValue& value, const std::string& path);
// The bytes of `path`; NotFound naming it if it cannot be read.
absl::StatusOr<std::vector<char>> ReadFileBytes(const std::string& path);

// The history steps of t: 0, round(0.4 t), round(0.7 t), t (halves round
// up: t = 15 gives 0, 6, 11, 15).
std::array<int64_t, 4> HistorySteps(int64_t t);

struct HistoryFeatures {
  at::Tensor inputs;      // weights x 4 (or 5 with a direction), float32
  at::Tensor move_scale;  // weights: c_move of the weight's tensor
};

// The features of every weight from its snapshots at 0, 0.4t, 0.7t, t, and
// with `direction` (AdamDirection at t, defined) a fifth column.
HistoryFeatures ComputeFeatures(const std::array<at::Tensor, 4>& history,
                                const ParameterLayout& layout,
                                const at::Tensor& direction = at::Tensor());

// Adam's (or AdamW's) next step for every weight in units of its learning
// rate, m_hat / (sqrt(v_hat) + eps) with the bias corrections of each
// parameter's step count, flat in the order of module.parameters()
// (float32); 0 for a parameter without state yet. InvalidArgument when the
// optimizer is not Adam or AdamW.
absl::StatusOr<at::Tensor> AdamDirection(torch::optim::Optimizer& optimizer,
                                         torch::nn::Module& module);

// The training set of the introspection network.
struct HistoryDataset {
  at::Tensor inputs;        // N x 4 (5 with optimizer features), float32
  at::Tensor targets;       // N, (w(2t) - w(t)) / c_move
  at::Tensor weight_index;  // N, int64: the weight's index in the snapshot
  at::Tensor t;             // N, int64: the t of the row
  int64_t size() const { return inputs.defined() ? inputs.size(0) : 0; }
};

struct SamplingOptions {
  int64_t samples_per_t = 100000;
  int balance_bins = 8;
  uint64_t seed = 1;
};

// Indices of at most `count` entries of `movement` (>= 0), balanced: the
// entries are put into `bins` equal-width bins of log10(movement) (between
// its 0.1 and 99.9 percentiles; entries outside go to the end bins, zeros
// to the first) and bin b gives at most count / bins of them (the first
// count % bins bins one more), drawn uniformly without replacement. Sorted
// ascending.
at::Tensor BalancedSample(const at::Tensor& movement, int64_t count, int bins,
                          uint64_t seed);

// The rows of every t: for each t, BalancedSample of |target| over all
// weights, rows built from snapshots[0], [0.4t], [0.7t], [t] and [2t]
// exactly. FailedPrecondition naming a missing snapshot step.
// With `directions` (AdamDirection by t), each row's fifth column is its
// weight's direction at t.
absl::StatusOr<HistoryDataset> BuildHistoryDataset(
    const std::map<int64_t, at::Tensor>& snapshots,
    const std::vector<int64_t>& t_steps, const ParameterLayout& layout,
    const SamplingOptions& options,
    const std::map<int64_t, at::Tensor>* directions = nullptr);

// A torch-pickled dict {"inputs", "targets", "weight_index", "t"} (opens in
// Python with torch.load).
absl::Status SaveHistoryDataset(const HistoryDataset& dataset,
                                const std::string& path);
absl::StatusOr<HistoryDataset> LoadHistoryDataset(const std::string& path);

// Concatenates datasets (rows of all, in order).
HistoryDataset ConcatDatasets(const std::vector<HistoryDataset>& parts);

}  // namespace ouroboros::introspective

#endif  // PLUGINS_INTROSPECTIVE_WEIGHT_HISTORY_H_
