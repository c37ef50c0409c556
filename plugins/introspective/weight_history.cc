#include "plugins/introspective/weight_history.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/nn/module.h>
#include <torch/optim/adam.h>
#include <torch/optim/adamw.h>
#include <torch/serialize.h>
#include <torch/utils.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iterator>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "ouroboros/base/errors.h"
#include "ouroboros/runs/run_dir.h"

namespace ouroboros::introspective {
namespace {

// Guards the divisions of the normalisation (a tensor that did not move).
constexpr double kTiny = 1e-12;

// Per-tensor RMS of `values`, expanded back to one entry per weight.
at::Tensor PerTensorRms(const at::Tensor& values,
                        const ParameterLayout& layout) {
  const int64_t tensors = static_cast<int64_t>(layout.sizes.size());
  at::Tensor sums = at::zeros({tensors}, values.options())
                        .index_add_(0, layout.tensor_of, values * values);
  at::Tensor counts = at::tensor(layout.sizes, at::kLong).to(values.dtype());
  at::Tensor rms = (sums / counts).sqrt_().clamp_min_(kTiny);
  return rms.index_select(0, layout.tensor_of);
}

}  // namespace

ParameterLayout LayoutOf(torch::nn::Module& module) {
  ParameterLayout layout;
  for (const auto& item : module.named_parameters()) {
    layout.names.push_back(item.key());
    layout.sizes.push_back(item.value().numel());
    layout.total += item.value().numel();
  }
  at::Tensor ids =
      at::arange(static_cast<int64_t>(layout.sizes.size()), at::kLong);
  layout.tensor_of =
      at::repeat_interleave(ids, at::tensor(layout.sizes, at::kLong));
  return layout;
}

at::Tensor Snapshot(torch::nn::Module& module) {
  std::vector<at::Tensor> flat;
  for (const at::Tensor& p : module.parameters()) {
    flat.push_back(p.detach().reshape({-1}));
  }
  if (flat.empty()) return at::empty({0}, at::kFloat);
  return at::cat(flat).to(at::kFloat);
}

absl::Status WriteSnapshot(const at::Tensor& flat, torch::nn::Module& module) {
  return CallTorch("writing the weights", [&] {
    torch::NoGradGuard no_grad;
    int64_t offset = 0;
    for (at::Tensor& p : module.parameters()) {
      const int64_t n = p.numel();
      TORCH_CHECK(offset + n <= flat.numel(), "the snapshot has ", flat.numel(),
                  " weights, fewer than the model");
      p.copy_(flat.narrow(0, offset, n).view(p.sizes()));
      offset += n;
    }
    TORCH_CHECK(offset == flat.numel(), "the snapshot has ", flat.numel(),
                " weights, the model ", offset);
  });
}

absl::Status SavePickled(const c10::IValue& value, const std::string& path) {
  std::vector<char> bytes;
  absl::Status status =
      CallTorch("writing " + path, [&] { bytes = torch::pickle_save(value); });
  if (!status.ok()) return status;
  return WriteFileAtomically(path, std::string(bytes.begin(), bytes.end()));
}

absl::StatusOr<std::vector<char>> ReadFileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot read"));
  return std::vector<char>((std::istreambuf_iterator<char>(in)),
                           std::istreambuf_iterator<char>());
}

std::array<int64_t, 4> HistorySteps(int64_t t) {
  return {0, std::llround(0.4 * static_cast<double>(t)),
          std::llround(0.7 * static_cast<double>(t)), t};
}

HistoryFeatures ComputeFeatures(const std::array<at::Tensor, 4>& history,
                                const ParameterLayout& layout,
                                const at::Tensor& direction) {
  const at::Tensor& wt = history[3];
  HistoryFeatures features;
  features.move_scale = PerTensorRms(wt - history[0], layout);
  at::Tensor position_scale = PerTensorRms(wt, layout);
  std::vector<at::Tensor> columns = {(history[0] - wt) / features.move_scale,
                                     (history[1] - wt) / features.move_scale,
                                     (history[2] - wt) / features.move_scale,
                                     wt / position_scale};
  if (direction.defined()) columns.push_back(direction.to(at::kFloat));
  // Built column-major (F x N, viewed as N x F): Predict reads it in place.
  features.inputs = at::stack(columns, 0).t();
  return features;
}

absl::StatusOr<at::Tensor> AdamDirection(torch::optim::Optimizer& optimizer,
                                         torch::nn::Module& module) {
  std::vector<at::Tensor> parts;
  absl::Status status = CallTorch("Adam's direction", [&] {
    for (const at::Tensor& p : module.parameters()) {
      parts.push_back(at::zeros({p.numel()}, at::kFloat));
    }
  });
  if (!status.ok()) return status;
  // The options of the group holding each parameter (betas, eps).
  std::map<const void*, const torch::optim::OptimizerOptions*> options_of;
  for (const auto& group : optimizer.param_groups()) {
    for (const at::Tensor& p : group.params()) {
      options_of[p.unsafeGetTensorImpl()] = &group.options();
    }
  }
  int64_t index = 0;
  for (const at::Tensor& p : module.parameters()) {
    const at::Tensor* first = nullptr;
    const at::Tensor* second = nullptr;
    int64_t step = 0;
    auto found =
        optimizer.state().find(c10::guts::to_string(p.unsafeGetTensorImpl()));
    auto options = options_of.find(p.unsafeGetTensorImpl());
    if (options == options_of.end()) {
      return absl::InvalidArgumentError(
          "Adam's direction: a parameter of the model is not in the optimizer");
    }
    double beta1 = 0, beta2 = 0, eps = 0;
    if (const auto* adam =
            dynamic_cast<const torch::optim::AdamOptions*>(options->second)) {
      std::tie(beta1, beta2) = adam->betas();
      eps = adam->eps();
    } else if (const auto* adamw =
                   dynamic_cast<const torch::optim::AdamWOptions*>(
                       options->second)) {
      std::tie(beta1, beta2) = adamw->betas();
      eps = adamw->eps();
    } else {
      return absl::InvalidArgumentError(
          "optimizer features read Adam's moments: the run's optimizer must "
          "be adam or adamw");
    }
    if (found != optimizer.state().end()) {
      if (const auto* state = dynamic_cast<const torch::optim::AdamParamState*>(
              found->second.get())) {
        first = &state->exp_avg();
        second = &state->exp_avg_sq();
        step = state->step();
      } else if (const auto* state =
                     dynamic_cast<const torch::optim::AdamWParamState*>(
                         found->second.get())) {
        first = &state->exp_avg();
        second = &state->exp_avg_sq();
        step = state->step();
      }
    }
    if (first != nullptr && step > 0) {
      status = CallTorch("Adam's direction", [&] {
        torch::NoGradGuard no_grad;
        const double correction1 = 1 - std::pow(beta1, double(step));
        const double correction2 = 1 - std::pow(beta2, double(step));
        const at::Tensor direction =
            (*first / correction1) / ((*second / correction2).sqrt() + eps);
        parts[index].copy_(direction.reshape({-1}));
      });
      if (!status.ok()) return status;
    }
    ++index;
  }
  return at::cat(parts);
}

at::Tensor BalancedSample(const at::Tensor& movement, int64_t count, int bins,
                          uint64_t seed) {
  const int64_t n = movement.numel();
  at::Generator generator = at::detail::createCPUGenerator(seed);
  if (count >= n && bins <= 1) return at::arange(n, at::kLong);
  if (bins <= 1) {
    return std::get<0>(
        at::randperm(n, generator, at::kLong).narrow(0, 0, count).sort());
  }
  at::Tensor log_move = movement.clamp_min(1e-30).log10();
  at::Tensor sorted = std::get<0>(log_move.sort());
  const double low =
      sorted[static_cast<int64_t>(0.001 * (n - 1))].item<double>();
  const double high =
      sorted[static_cast<int64_t>(0.999 * (n - 1))].item<double>();
  const double width = std::max(high - low, 1e-9) / bins;
  at::Tensor bin = ((log_move - low) / width).floor_().clamp_(0, bins - 1);
  bin.masked_fill_(movement <= 0, 0);
  bin = bin.to(at::kLong);
  std::vector<at::Tensor> chosen;
  for (int b = 0; b < bins; ++b) {
    const int64_t quota = count / bins + (b < count % bins ? 1 : 0);
    at::Tensor members = (bin == b).nonzero().reshape({-1});
    const int64_t size = members.numel();
    if (size <= quota) {
      chosen.push_back(members);
    } else {
      chosen.push_back(members.index_select(
          0, at::randperm(size, generator, at::kLong).narrow(0, 0, quota)));
    }
  }
  return std::get<0>(at::cat(chosen).sort());
}

absl::StatusOr<HistoryDataset> BuildHistoryDataset(
    const std::map<int64_t, at::Tensor>& snapshots,
    const std::vector<int64_t>& t_steps, const ParameterLayout& layout,
    const SamplingOptions& options,
    const std::map<int64_t, at::Tensor>* directions) {
  std::vector<HistoryDataset> parts;
  for (int64_t t : t_steps) {
    std::array<at::Tensor, 4> history;
    const std::array<int64_t, 4> steps = HistorySteps(t);
    for (int k = 0; k < 5; ++k) {
      const int64_t step = k < 4 ? steps[k] : 2 * t;
      if (snapshots.count(step) == 0) {
        return absl::FailedPreconditionError(
            absl::StrCat("history of t=", t, ": no snapshot of step ", step,
                         " (did the run end before step ", 2 * t, "?)"));
      }
      if (k < 4) history[k] = snapshots.at(step);
    }
    if (directions != nullptr && directions->count(t) == 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("history of t=", t, ": no optimizer direction at t"));
    }
    HistoryDataset part;
    absl::Status status = CallTorch("building the history dataset", [&] {
      HistoryFeatures features = ComputeFeatures(
          history, layout,
          directions != nullptr ? directions->at(t) : at::Tensor());
      at::Tensor targets =
          (snapshots.at(2 * t) - history[3]) / features.move_scale;
      at::Tensor rows = BalancedSample(targets.abs(), options.samples_per_t,
                                       options.balance_bins, options.seed + t);
      part.inputs = features.inputs.index_select(0, rows);
      part.targets = targets.index_select(0, rows);
      part.weight_index = rows;
      part.t = at::full({rows.numel()}, t, at::kLong);
    });
    if (!status.ok()) return status;
    parts.push_back(std::move(part));
  }
  return ConcatDatasets(parts);
}

HistoryDataset ConcatDatasets(const std::vector<HistoryDataset>& parts) {
  HistoryDataset all;
  std::vector<at::Tensor> inputs, targets, index, t;
  for (const HistoryDataset& part : parts) {
    if (part.size() == 0) continue;
    inputs.push_back(part.inputs);
    targets.push_back(part.targets);
    index.push_back(part.weight_index);
    t.push_back(part.t);
  }
  if (inputs.empty()) {
    all.inputs = at::empty({0, 4}, at::kFloat);
    all.targets = at::empty({0}, at::kFloat);
    all.weight_index = at::empty({0}, at::kLong);
    all.t = at::empty({0}, at::kLong);
    return all;
  }
  all.inputs = at::cat(inputs);
  all.targets = at::cat(targets);
  all.weight_index = at::cat(index);
  all.t = at::cat(t);
  return all;
}

absl::Status SaveHistoryDataset(const HistoryDataset& dataset,
                                const std::string& path) {
  c10::Dict<std::string, at::Tensor> dict;
  dict.insert("inputs", dataset.inputs);
  dict.insert("targets", dataset.targets);
  dict.insert("weight_index", dataset.weight_index);
  dict.insert("t", dataset.t);
  return SavePickled(c10::IValue(dict), path);
}

absl::StatusOr<HistoryDataset> LoadHistoryDataset(const std::string& path) {
  absl::StatusOr<std::vector<char>> bytes = ReadFileBytes(path);
  if (!bytes.ok()) return bytes.status();
  HistoryDataset dataset;
  absl::Status status = CallTorch("reading " + path, [&] {
    c10::IValue value = torch::pickle_load(*bytes);
    std::map<std::string, at::Tensor> by_name;
    for (const auto& entry : value.toGenericDict()) {
      by_name[entry.key().toStringRef()] = entry.value().toTensor();
    }
    for (const char* key : {"inputs", "targets", "weight_index", "t"}) {
      TORCH_CHECK(by_name.count(key) == 1, "no tensor '", key, "'");
    }
    dataset.inputs = by_name["inputs"];
    dataset.targets = by_name["targets"];
    dataset.weight_index = by_name["weight_index"];
    dataset.t = by_name["t"];
    const int64_t n = dataset.inputs.size(0);
    TORCH_CHECK(
        dataset.inputs.dim() == 2 &&
            (dataset.inputs.size(1) == 4 || dataset.inputs.size(1) == 5) &&
            dataset.targets.numel() == n && dataset.weight_index.numel() == n &&
            dataset.t.numel() == n,
        "not a history dataset (inputs must be N x 4 or N x 5, the others N)");
  });
  if (!status.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        path,
        ": not a history dataset of introspection_record: ", status.message()));
  }
  return dataset;
}

}  // namespace ouroboros::introspective
