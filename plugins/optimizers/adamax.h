// Adamax (Kingma & Ba 2015, section 7.1), which LibTorch 1.13 lacks; the
// quine paper trains with it. Matches torch.optim.Adamax:
//   m <- b1 m + (1 - b1) g;   u <- max(b2 u, |g| + eps)
//   p <- p - lr / (1 - b1^t) * m / u      (g includes weight_decay * p)
#ifndef PLUGINS_OPTIMIZERS_ADAMAX_H_
#define PLUGINS_OPTIMIZERS_ADAMAX_H_

#include <torch/optim/optimizer.h>
#include <torch/optim/serialize.h>

#include <tuple>
#include <vector>

namespace ouroboros::optimizers {

struct AdamaxOptions
    : public torch::optim::OptimizerCloneableOptions<AdamaxOptions> {
  explicit AdamaxOptions(double lr = 2e-3) : lr_(lr) {}
  TORCH_ARG(double, lr);
  typedef std::tuple<double, double> betas_t;
  TORCH_ARG(betas_t, betas) = std::make_tuple(0.9, 0.999);
  TORCH_ARG(double, eps) = 1e-8;
  TORCH_ARG(double, weight_decay) = 0;

  // TORCH_ARG leaves the access at private.
 public:
  double get_lr() const override { return lr(); }
  void set_lr(const double lr) override { this->lr(lr); }
  void serialize(torch::serialize::InputArchive& archive) override;
  void serialize(torch::serialize::OutputArchive& archive) const override;
};

struct AdamaxParamState
    : public torch::optim::OptimizerCloneableParamState<AdamaxParamState> {
  TORCH_ARG(int64_t, step) = 0;
  TORCH_ARG(torch::Tensor, exp_avg);
  TORCH_ARG(torch::Tensor, exp_inf);

 public:
  void serialize(torch::serialize::InputArchive& archive) override;
  void serialize(torch::serialize::OutputArchive& archive) const override;
};

class Adamax : public torch::optim::Optimizer {
 public:
  Adamax(std::vector<torch::Tensor> params,
         AdamaxOptions defaults = AdamaxOptions());
  torch::Tensor step(LossClosure closure = nullptr) override;
  // For checkpoints (the base Optimizer saves nothing).
  void save(torch::serialize::OutputArchive& archive) const override;
  void load(torch::serialize::InputArchive& archive) override;
};

}  // namespace ouroboros::optimizers

#endif  // PLUGINS_OPTIMIZERS_ADAMAX_H_
