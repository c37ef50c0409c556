#include "ouroboros/distributed/gradient_reducer.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/utils/lambda_post_hook.h>
#include <torch/csrc/autograd/variable.h>

#include <cmath>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "ouroboros/base/errors.h"
#include "ouroboros/base/status_macros.h"

namespace ouroboros {

struct GradientReducer::State {
  ProcessGroup* group = nullptr;
  std::vector<at::Tensor> parameters;
  // Parameter indices of each bucket; bucket 0 holds the last parameters
  // (the first gradients of a backward).
  std::vector<std::vector<int64_t>> buckets;
  std::vector<int64_t> bucket_of;  // by parameter
  // The hooks, removed with the reducer (the accumulators live as long as
  // their parameters; a hook left behind would outlive this state's use).
  std::vector<std::pair<std::shared_ptr<torch::autograd::Node>, uintptr_t>>
      hooks;

  // One step's progress, from Arm to Finish.
  bool armed = false;
  int stop_vote = 0;
  std::vector<bool> accumulated;  // by parameter
  std::vector<int64_t> missing;   // gradients still to come, by bucket
  std::vector<at::Tensor> flats;  // by bucket, once started
  std::vector<int64_t> tickets;   // by bucket, once started
  int64_t started_in_backward = 0;
  absl::Status error;  // the first failure inside a hook

  bool CarriesTheVote(int64_t bucket) const {
    return bucket + 1 == static_cast<int64_t>(buckets.size());
  }

  // The bucket's gradients (zeros for a parameter without one) in one flat
  // tensor, with the vote at its end for the last bucket, on its way.
  absl::Status Start(int64_t bucket) {
    const std::vector<int64_t>& members = buckets[bucket];
    int64_t total = CarriesTheVote(bucket) ? 1 : 0;
    for (int64_t i : members) total += parameters[i].numel();
    at::Tensor flat;
    RETURN_IF_ERROR(CallTorch("averaging gradients", [&] {
      flat = at::empty({total}, parameters[members.front()].options());
      int64_t offset = 0;
      for (int64_t i : members) {
        const at::Tensor& p = parameters[i];
        at::Tensor slot = flat.narrow(0, offset, p.numel());
        if (p.grad().defined()) {
          slot.copy_(p.grad().detach().reshape({-1}));
        } else {
          slot.zero_();
        }
        offset += p.numel();
      }
      if (CarriesTheVote(bucket)) flat[total - 1].fill_(stop_vote);
    }));
    flats[bucket] = flat;
    ASSIGN_OR_RETURN(tickets[bucket], group->StartSumInPlace(flat));
    return absl::OkStatus();
  }

  // A post hook of parameter i's gradient accumulator: its gradient of this
  // backward is in .grad.
  void OnAccumulated(int64_t i) {
    if (!armed || accumulated[i] || !error.ok()) return;
    accumulated[i] = true;
    const int64_t bucket = bucket_of[i];
    if (--missing[bucket] > 0) return;
    error = Start(bucket);
    if (error.ok()) ++started_in_backward;
  }
};

GradientReducer::GradientReducer(std::shared_ptr<State> state)
    : state_(std::move(state)) {}

GradientReducer::~GradientReducer() {
  for (auto& [accumulator, key] : state_->hooks) {
    accumulator->del_post_hook(key);
  }
}

absl::StatusOr<std::unique_ptr<GradientReducer>> GradientReducer::Create(
    ProcessGroup* group, std::vector<at::Tensor> parameters,
    int64_t bucket_bytes) {
  if (group == nullptr) {
    return absl::InvalidArgumentError("GradientReducer: no process group");
  }
  auto state = std::make_shared<State>();
  state->group = group;
  state->parameters = std::move(parameters);
  const int64_t count = static_cast<int64_t>(state->parameters.size());
  state->bucket_of.assign(count, -1);
  // Reverse order; a bucket holds one dtype.
  int64_t bytes = 0;
  for (int64_t i = count - 1; i >= 0; --i) {
    const at::Tensor& p = state->parameters[i];
    if (!p.requires_grad()) continue;
    const int64_t size = p.numel() * p.element_size();
    if (state->buckets.empty() || bytes + size > bucket_bytes ||
        state->parameters[state->buckets.back().front()].scalar_type() !=
            p.scalar_type()) {
      state->buckets.emplace_back();
      bytes = 0;
    }
    state->buckets.back().push_back(i);
    state->bucket_of[i] = static_cast<int64_t>(state->buckets.size()) - 1;
    bytes += size;
  }
  RETURN_IF_ERROR(CallTorch("hooking the gradient accumulators", [&] {
    std::weak_ptr<State> weak = state;
    for (int64_t i = 0; i < count; ++i) {
      if (state->bucket_of[i] < 0) continue;
      std::shared_ptr<torch::autograd::Node> accumulator =
          torch::autograd::impl::grad_accumulator(state->parameters[i]);
      const uintptr_t key = accumulator->add_post_hook(
          std::make_unique<torch::autograd::utils::LambdaPostHook>(
              [weak, i](const torch::autograd::variable_list& outputs,
                        const torch::autograd::variable_list&) {
                if (std::shared_ptr<State> live = weak.lock()) {
                  live->OnAccumulated(i);
                }
                return outputs;
              }));
      state->hooks.emplace_back(std::move(accumulator), key);
    }
  }));
  return std::unique_ptr<GradientReducer>(new GradientReducer(state));
}

void GradientReducer::Arm(int stop_vote) {
  State& s = *state_;
  s.armed = true;
  s.stop_vote = stop_vote;
  s.accumulated.assign(s.parameters.size(), false);
  s.missing.clear();
  for (const auto& bucket : s.buckets) {
    s.missing.push_back(static_cast<int64_t>(bucket.size()));
  }
  s.flats.assign(s.buckets.size(), at::Tensor());
  s.tickets.assign(s.buckets.size(), -1);
  s.started_in_backward = 0;
  s.error = absl::OkStatus();
}

void GradientReducer::Disarm() { state_->armed = false; }

bool GradientReducer::armed() const { return state_->armed; }

absl::StatusOr<int> GradientReducer::Finish() {
  State& s = *state_;
  s.armed = false;
  absl::Status status = s.error;
  // Every rank starts every bucket once, in the same order for the ones
  // the backward left.
  for (size_t b = 0; status.ok() && b < s.buckets.size(); ++b) {
    if (s.tickets[b] < 0) status = s.Start(static_cast<int64_t>(b));
  }
  for (size_t b = 0; b < s.buckets.size(); ++b) {
    if (s.tickets[b] < 0) continue;
    // Wait for every started one, even after a failure, so that none is
    // left in flight.
    absl::Status waited = s.group->WaitForSum(s.tickets[b]);
    if (status.ok()) status = waited;
  }
  if (!status.ok()) {
    return absl::Status(
        status.code(),
        absl::StrCat(status.message(), " (rank ", s.group->config().rank,
                     "; did another rank stop or die?)"));
  }
  int votes = 0;
  const int world = s.group->config().world_size;
  RETURN_IF_ERROR(CallTorch("averaging gradients", [&] {
    for (size_t b = 0; b < s.buckets.size(); ++b) {
      at::Tensor flat = s.flats[b];
      if (s.CarriesTheVote(static_cast<int64_t>(b))) {
        votes = static_cast<int>(
            std::lround(flat[flat.numel() - 1].item<double>()));
        flat = flat.narrow(0, 0, flat.numel() - 1);
      }
      flat.div_(world);
      int64_t offset = 0;
      for (int64_t i : s.buckets[b]) {
        at::Tensor& p = s.parameters[i];
        at::Tensor mean = flat.narrow(0, offset, p.numel()).view_as(p);
        if (p.grad().defined()) {
          p.mutable_grad().detach().copy_(mean);
        } else {
          p.mutable_grad() = mean.clone();
        }
        offset += p.numel();
      }
    }
  }));
  return votes;
}

int64_t GradientReducer::buckets() const {
  return static_cast<int64_t>(state_->buckets.size());
}

int64_t GradientReducer::buckets_started_in_backward() const {
  return state_->started_in_backward;
}

}  // namespace ouroboros
