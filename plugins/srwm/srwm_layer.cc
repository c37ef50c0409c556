#include "plugins/srwm/srwm_layer.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <vector>

#include "plugins/srwm/srwm_kernel.h"

namespace ouroboros::srwm {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

SrwmShape ShapeOf(const at::Tensor& x) {
  return SrwmShape{x.size(0), x.size(1), x.size(2), x.size(3)};
}

void CheckInputs(const at::Tensor& x, const at::Tensor& w0) {
  TORCH_CHECK(x.dim() == 4, "srwm: x must be B x T x H x d, got ", x.sizes());
  const int64_t heads = x.size(2), d = x.size(3);
  TORCH_CHECK(w0.dim() == 3 && w0.size(0) == heads &&
                  w0.size(1) == SrwmRows(d) && w0.size(2) == d,
              "srwm: w0 must be H x (3d + 4) x d = ", heads, " x ", SrwmRows(d),
              " x ", d, ", got ", w0.sizes());
  TORCH_CHECK(x.device().is_cpu() && w0.device().is_cpu(),
              "srwm: the fused kernel runs on the CPU");
  TORCH_CHECK(
      x.scalar_type() == w0.scalar_type() &&
          (x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble),
      "srwm: x and w0 must both be float32 or both float64");
}

// One task per (b, h) pair: each runs its whole time loop, and the pairs are
// independent, so at::parallel_for splits them over the intra-op threads.
constexpr int64_t kGrain = 1;

class SrwmFunction : public torch::autograd::Function<SrwmFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x_in,
                            const at::Tensor& w0_in) {
    CheckInputs(x_in, w0_in);
    at::Tensor x = x_in.contiguous();
    at::Tensor w0 = w0_in.contiguous();
    const SrwmShape shape = ShapeOf(x);
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
    ctx->save_for_backward({x, w_final, trace});
    return y;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grad_outputs) {
    std::vector<at::Tensor> saved = ctx->get_saved_variables();
    const at::Tensor& x = saved[0];
    const at::Tensor& w_final = saved[1];
    const at::Tensor& trace = saved[2];
    at::Tensor grad_y = grad_outputs[0].contiguous();
    const SrwmShape shape = ShapeOf(x);
    at::Tensor grad_x = at::empty_like(x);
    at::Tensor grad_w0_per_batch = at::empty_like(w_final);
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "srwm_backward", [&] {
      at::parallel_for(
          0, shape.batch * shape.heads, kGrain,
          [&](int64_t begin, int64_t end) {
            SrwmBackwardRange<scalar_t>(
                shape, x.data_ptr<scalar_t>(), w_final.data_ptr<scalar_t>(),
                trace.data_ptr<scalar_t>(), grad_y.data_ptr<scalar_t>(),
                grad_x.data_ptr<scalar_t>(),
                grad_w0_per_batch.data_ptr<scalar_t>(), begin, end);
          });
    });
    return {grad_x, grad_w0_per_batch.sum(0)};
  }
};

}  // namespace

at::Tensor SrwmFused(const at::Tensor& x, const at::Tensor& w0) {
  return SrwmFunction::apply(x, w0);
}

at::Tensor SrwmNaive(const at::Tensor& x, const at::Tensor& w0) {
  CheckInputs(x, w0);
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
  CheckInputs(x, w0);
  const int64_t d = x.size(3);
  // y[b,t,h,i] = sum_j W0[h,i,j] x[b,t,h,j] over the y rows only.
  return at::einsum("bthj,hij->bthi", {x, w0.narrow(1, 0, d)});
}

}  // namespace ouroboros::srwm
