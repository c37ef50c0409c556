// Averages the gradients over the ranks while the backward still runs, as
// PyTorch's DDP reducer does for Python users (LibTorch's C++ frontend has
// no DDP). The parameters go into buckets of at most bucket_bytes in
// reverse order, the order in which a backward produces their gradients. A
// hook on each parameter's gradient accumulator counts the gradients of its
// bucket as they are accumulated; the moment a bucket is complete, its flat
// copy starts its all-reduce and the backward goes on meanwhile.
//
//   absl::StatusOr<std::unique_ptr<GradientReducer>> reducer =
//       GradientReducer::Create(group, module.parameters(), 1 << 20);
//   (*reducer)->Arm(stop_vote);  // right before loss.backward()
//   loss.backward();             // the buckets leave as they fill
//   absl::StatusOr<int> votes = (*reducer)->Finish();  // means in .grad
//
// The means are those of ProcessGroup::AverageGradients after the backward:
// the same accumulated gradients, summed by the same Gloo all-reduce and
// divided by the world size. With two ranks they are bit-identical (a sum of
// two is the same either way round); with more, Gloo's ring sums an element
// in an order that depends on its place in its bucket, so they agree to
// rounding. Outside Arm ... Finish the hooks do nothing: other backward
// passes (a model's own) are left alone. A parameter that got no gradient
// in the step is averaged as zeros, on every rank alike, so the ranks always
// exchange the same buckets.
#ifndef OUROBOROS_DISTRIBUTED_GRADIENT_REDUCER_H_
#define OUROBOROS_DISTRIBUTED_GRADIENT_REDUCER_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "ouroboros/distributed/distributed.h"

namespace ouroboros {

class GradientReducer {
 public:
  // `group` must outlive the reducer; `parameters` in the module's order.
  static absl::StatusOr<std::unique_ptr<GradientReducer>> Create(
      ProcessGroup* group, std::vector<at::Tensor> parameters,
      int64_t bucket_bytes);
  ~GradientReducer();

  // The next backward's accumulated gradients are reduced as they come.
  // `stop_vote` (0 or 1) rides on the bucket of the first parameters.
  void Arm(int stop_vote);
  // After the backward: starts the buckets it did not complete, waits for
  // all, writes the means into the parameters' gradients and disarms.
  // Returns how many ranks voted to stop.
  absl::StatusOr<int> Finish();
  // Disarms without exchanging anything (the step failed before or during
  // its backward; the run ends).
  void Disarm();
  // Between Arm and Finish (or Disarm).
  bool armed() const;

  int64_t buckets() const;
  // Buckets whose all-reduce the last backward started while it ran (the
  // rest started in Finish).
  int64_t buckets_started_in_backward() const;

 private:
  struct State;
  explicit GradientReducer(std::shared_ptr<State> state);
  std::shared_ptr<State> state_;
};

}  // namespace ouroboros

#endif  // OUROBOROS_DISTRIBUTED_GRADIENT_REDUCER_H_
