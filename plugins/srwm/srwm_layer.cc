#include "plugins/srwm/srwm_layer.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <string>
#include <tuple>
#include <vector>

#include "plugins/srwm/srwm_kernel.h"

namespace ouroboros::srwm {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

SrwmShape ShapeOf(const at::Tensor& x, bool initial_state_per_batch) {
  return SrwmShape{x.size(0), x.size(1), x.size(2), x.size(3),
                   initial_state_per_batch};
}

// "float32" / "float64" as Python users write them; other types by ATen's
// name ("Long", "Half", ...).
std::string DtypeName(at::ScalarType type) {
  if (type == at::kFloat) return "float32";
  if (type == at::kDouble) return "float64";
  return c10::toString(type);
}

// Checks x (B x T x H x d) and its weights `w_name`: H x r x d, or
// B x H x r x d with initial_state_per_batch. `op` names the caller in the
// messages, which reach Python users as RuntimeError.
void CheckInputs(const char* op, const at::Tensor& x, const char* w_name,
                 const at::Tensor& w, bool initial_state_per_batch) {
  TORCH_CHECK(x.dim() == 4, op,
              ": x must be 4-D, B x T x H x d (batch, steps, heads, head "
              "dim); got shape ",
              x.sizes());
  const int64_t batch = x.size(0), heads = x.size(2), d = x.size(3);
  TORCH_CHECK(d >= 1, op, ": x's head dim d (its last dim) must be >= 1; got ",
              "shape ", x.sizes());
  if (initial_state_per_batch) {
    TORCH_CHECK(w.dim() == 4 && w.size(0) == batch && w.size(1) == heads &&
                    w.size(2) == SrwmRows(d) && w.size(3) == d,
                op, ": ", w_name, " must be B x H x (3d + 4) x d = ", batch,
                " x ", heads, " x ", SrwmRows(d), " x ", d, " for x of shape ",
                x.sizes(), "; got shape ", w.sizes());
  } else {
    TORCH_CHECK(w.dim() == 3 && w.size(0) == heads &&
                    w.size(1) == SrwmRows(d) && w.size(2) == d,
                op, ": ", w_name, " must be H x (3d + 4) x d = ", heads, " x ",
                SrwmRows(d), " x ", d, " for x of shape ", x.sizes(),
                "; got shape ", w.sizes());
  }
  TORCH_CHECK(x.device().is_cpu() && w.device().is_cpu(), op, ": x and ",
              w_name, " must be CPU tensors (there is no CUDA kernel); got x ",
              "on ", x.device(), ", ", w_name, " on ", w.device());
  TORCH_CHECK(x.layout() == at::kStrided && w.layout() == at::kStrided, op,
              ": x and ", w_name, " must be dense (strided) tensors");
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble,
              op, ": x must be float32 or float64; got ",
              DtypeName(x.scalar_type()));
  TORCH_CHECK(w.scalar_type() == x.scalar_type(), op, ": ", w_name,
              " must have x's dtype ", DtypeName(x.scalar_type()), "; got ",
              DtypeName(w.scalar_type()));
}

// One task per (b, h) pair: each runs its whole time loop, and the pairs are
// independent, so at::parallel_for splits them over the intra-op threads.
constexpr int64_t kGrain = 1;

// Inputs: x, w0 (H x r x d, or B x H x r x d with initial_state_per_batch).
// Outputs: y and the final state W_T. The arguments are checked by the
// callers, which know the names the user gave them.
class SrwmFunction : public torch::autograd::Function<SrwmFunction> {
 public:
  static tensor_list forward(AutogradContext* ctx, const at::Tensor& x_in,
                             const at::Tensor& w0_in,
                             bool initial_state_per_batch) {
    at::Tensor x = x_in.contiguous();
    at::Tensor w0 = w0_in.contiguous();
    const SrwmShape shape = ShapeOf(x, initial_state_per_batch);
    const int64_t d = shape.head_dim;
    at::Tensor y = at::empty_like(x);
    at::Tensor w_final =
        at::empty({shape.batch, shape.heads, SrwmRows(d), d}, x.options());
    at::Tensor trace = at::empty(
        {shape.batch, shape.heads, shape.steps, SrwmTraceSize(d)}, x.options());
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "srwm_forward", [&] {
      at::parallel_for(0, shape.batch * shape.heads, kGrain,
                       [&](int64_t begin, int64_t end) {
                         SrwmForwardRange<scalar_t>(
                             shape, x.data_ptr<scalar_t>(),
                             w0.data_ptr<scalar_t>(), y.data_ptr<scalar_t>(),
                             w_final.data_ptr<scalar_t>(),
                             trace.data_ptr<scalar_t>(), begin, end);
                       });
    });
    ctx->saved_data["initial_state_per_batch"] = initial_state_per_batch;
    ctx->save_for_backward({x, w_final, trace});
    // SrwmFused drops W_T: its gradient then arrives undefined, and the
    // kernel starts from zero without a B x H x r x d tensor of zeros.
    ctx->set_materialize_grads(false);
    return {y, w_final};
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grad_outputs) {
    // The backward is hand-written and not itself differentiable: fail
    // rather than give silently wrong second derivatives.
    TORCH_CHECK(!at::GradMode::is_enabled(),
                "srwm: double backward (a backward with create_graph=True "
                "through the fused SRWM) is not supported");
    std::vector<at::Tensor> saved = ctx->get_saved_variables();
    const at::Tensor& x = saved[0];
    const at::Tensor& w_final = saved[1];
    const at::Tensor& trace = saved[2];
    const bool initial_state_per_batch =
        ctx->saved_data["initial_state_per_batch"].toBool();
    at::Tensor grad_y = grad_outputs[0].defined() ? grad_outputs[0].contiguous()
                                                  : at::zeros_like(x);
    at::Tensor grad_w_final =
        grad_outputs[1].defined() ? grad_outputs[1].contiguous() : at::Tensor();
    const SrwmShape shape = ShapeOf(x, initial_state_per_batch);
    at::Tensor grad_x = at::empty_like(x);
    at::Tensor grad_w0_per_batch = at::empty_like(w_final);
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "srwm_backward", [&] {
      const scalar_t* grad_w_final_data =
          grad_w_final.defined() ? grad_w_final.data_ptr<scalar_t>() : nullptr;
      at::parallel_for(
          0, shape.batch * shape.heads, kGrain,
          [&](int64_t begin, int64_t end) {
            SrwmBackwardRange<scalar_t>(
                shape, x.data_ptr<scalar_t>(), w_final.data_ptr<scalar_t>(),
                trace.data_ptr<scalar_t>(), grad_y.data_ptr<scalar_t>(),
                grad_w_final_data, grad_x.data_ptr<scalar_t>(),
                grad_w0_per_batch.data_ptr<scalar_t>(), begin, end);
          });
    });
    at::Tensor grad_w0 =
        initial_state_per_batch ? grad_w0_per_batch : grad_w0_per_batch.sum(0);
    return {grad_x, grad_w0, at::Tensor()};
  }
};

}  // namespace

at::Tensor SrwmFused(const at::Tensor& x, const at::Tensor& w0) {
  CheckInputs("srwm", x, "w0", w0, /*initial_state_per_batch=*/false);
  return SrwmFunction::apply(x, w0, false)[0];
}

std::tuple<at::Tensor, at::Tensor> SrwmFusedWithState(
    const at::Tensor& x, const at::Tensor& w_init) {
  CheckInputs("srwm_with_state", x, "w_init", w_init,
              /*initial_state_per_batch=*/true);
  tensor_list outputs = SrwmFunction::apply(x, w_init, true);
  return {outputs[0], outputs[1]};
}

at::Tensor SrwmNaive(const at::Tensor& x, const at::Tensor& w0) {
  CheckInputs("srwm_naive", x, "w0", w0, /*initial_state_per_batch=*/false);
  const int64_t batch = x.size(0), steps = x.size(1), heads = x.size(2),
                d = x.size(3);
  const int64_t rows = SrwmRows(d);
  // Row i of W learns at rate beta[group(i)]: the y, q, k rows, then b.
  std::vector<int64_t> groups(rows);
  for (int64_t i = 0; i < rows; ++i) groups[i] = i < 3 * d ? i / d : 3;
  at::Tensor row_group = at::tensor(groups, at::kLong);
  at::Tensor w = w0.unsqueeze(0).expand({batch, heads, rows, d});
  std::vector<at::Tensor> outputs;
  outputs.reserve(steps);
  // Matrix-vector products as broadcast multiply + sum: on these small
  // per-head matrices that is ~3x faster than batched matmul (measured with
  // Python PyTorch, tools/bench_srwm_pytorch.py --mode=matmul), so the
  // reference is not slowed down artificially.
  auto times = [](const at::Tensor& w, const at::Tensor& v) {
    return (w * v.unsqueeze(-2)).sum(-1);
  };
  for (int64_t t = 0; t < steps; ++t) {
    at::Tensor o = times(w, x.select(1, t));
    at::Tensor q = at::softmax(o.narrow(-1, d, d), -1);
    at::Tensor k = at::softmax(o.narrow(-1, 2 * d, d), -1);
    at::Tensor beta = at::sigmoid(o.narrow(-1, 3 * d, 4));
    at::Tensor z = times(w, q - k);
    at::Tensor rate = beta.index_select(-1, row_group);
    w = w + (rate * z).unsqueeze(-1) * k.unsqueeze(-2);
    outputs.push_back(o.narrow(-1, 0, d));
  }
  return at::stack(outputs, 1);
}

at::Tensor SrwmFrozen(const at::Tensor& x, const at::Tensor& w0) {
  CheckInputs("srwm_frozen", x, "w0", w0, /*initial_state_per_batch=*/false);
  const int64_t d = x.size(3);
  // y[b,t,h,i] = sum_j W0[h,i,j] x[b,t,h,j] over the y rows only.
  return at::einsum("bthj,hij->bthi", {x, w0.narrow(1, 0, d)});
}

}  // namespace ouroboros::srwm
