#include "plugins/srwm/srwm_layer.h"

#include <ATen/ATen.h>

#include <cmath>
#include <vector>

#include "gtest/gtest.h"
#include "plugins/srwm/srwm_kernel.h"

namespace ouroboros::srwm {
namespace {

struct Shape {
  int64_t batch, steps, heads, head_dim;
};

// Random shapes, including T = 1, B = 1, head dims that are not powers of 2
// (the kernel's vector loops then have remainders) and the head dims the
// kernel specialises (16, 32, 64).
const std::vector<Shape>& TestShapes() {
  static const auto* shapes = new std::vector<Shape>{
      {2, 5, 3, 7},   {1, 1, 1, 5},  {1, 9, 2, 16}, {3, 4, 2, 3},
      {2, 17, 1, 13}, {4, 12, 4, 8}, {2, 6, 2, 32}, {1, 4, 2, 64}};
  return *shapes;
}

struct Inputs {
  at::Tensor x, w0, grad_y;
};

Inputs RandomInputs(const Shape& s, at::ScalarType type, uint64_t seed) {
  at::manual_seed(seed);
  at::TensorOptions options = at::TensorOptions().dtype(type);
  Inputs in;
  in.x = at::randn({s.batch, s.steps, s.heads, s.head_dim}, options);
  in.w0 = at::randn({s.heads, SrwmRows(s.head_dim), s.head_dim}, options) /
          std::sqrt(static_cast<double>(s.head_dim));
  in.grad_y = at::randn({s.batch, s.steps, s.heads, s.head_dim}, options);
  return in;
}

double MaxAbs(const at::Tensor& t) { return t.abs().max().item<double>(); }

double RelativeError(const at::Tensor& actual, const at::Tensor& expected) {
  return MaxAbs(actual - expected) / std::max(MaxAbs(expected), 1e-30);
}

// Gradients of sum(y * grad_y) with respect to x and w0.
std::vector<at::Tensor> Gradients(const Inputs& in, bool fused) {
  at::Tensor x = in.x.clone().requires_grad_(true);
  at::Tensor w0 = in.w0.clone().requires_grad_(true);
  at::Tensor y = fused ? SrwmFused(x, w0) : SrwmNaive(x, w0);
  (y * in.grad_y).sum().backward();
  return {x.grad(), w0.grad()};
}

TEST(SrwmLayerTest, FusedForwardEqualsNaiveReference) {
  int seed = 0;
  for (const Shape& s : TestShapes()) {
    SCOPED_TRACE(testing::Message() << "B=" << s.batch << " T=" << s.steps
                                    << " H=" << s.heads << " d=" << s.head_dim);
    Inputs in = RandomInputs(s, at::kFloat, ++seed);
    at::Tensor fused = SrwmFused(in.x, in.w0);
    at::Tensor naive = SrwmNaive(in.x, in.w0);
    ASSERT_EQ(fused.sizes(), naive.sizes());
    EXPECT_LE(MaxAbs(fused - naive), 1e-5);
    // Self-modification is real: outputs differ from the frozen W_0 ones
    // after the first step, and equal them at the first step.
    at::Tensor frozen = SrwmFrozen(in.x, in.w0);
    EXPECT_LE(MaxAbs(fused.select(1, 0) - frozen.select(1, 0)), 1e-5);
    if (s.steps > 1) {
      EXPECT_GT(MaxAbs(fused - frozen), 1e-3);
    }
  }
}

TEST(SrwmLayerTest, FusedGradientsEqualAutogradOfTheReference) {
  int seed = 100;
  for (const Shape& s : TestShapes()) {
    SCOPED_TRACE(testing::Message() << "B=" << s.batch << " T=" << s.steps
                                    << " H=" << s.heads << " d=" << s.head_dim);
    Inputs in = RandomInputs(s, at::kFloat, ++seed);
    std::vector<at::Tensor> fused = Gradients(in, /*fused=*/true);
    std::vector<at::Tensor> naive = Gradients(in, /*fused=*/false);
    EXPECT_LE(RelativeError(fused[0], naive[0]), 1e-4) << "dL/dx";
    EXPECT_LE(RelativeError(fused[1], naive[1]), 1e-4) << "dL/dW0";
  }
}

// Central finite differences of the fused forward, in double, against the
// fused backward, for every input element of a tiny case.
TEST(SrwmLayerTest, GradcheckInDouble) {
  const Shape s{2, 4, 2, 3};
  Inputs in = RandomInputs(s, at::kDouble, 7);
  std::vector<at::Tensor> analytic = Gradients(in, /*fused=*/true);
  const double eps = 1e-6;
  auto loss = [&](const at::Tensor& x, const at::Tensor& w0) {
    return (SrwmFused(x, w0) * in.grad_y).sum().item<double>();
  };
  std::vector<at::Tensor> inputs = {in.x, in.w0};
  for (size_t which = 0; which < inputs.size(); ++which) {
    at::Tensor flat = inputs[which].view(-1);
    at::Tensor grad = analytic[which].reshape(-1);
    for (int64_t i = 0; i < flat.numel(); ++i) {
      const double saved = flat[i].item<double>();
      flat[i] = saved + eps;
      const double plus = loss(in.x, in.w0);
      flat[i] = saved - eps;
      const double minus = loss(in.x, in.w0);
      flat[i] = saved;
      const double numeric = (plus - minus) / (2 * eps);
      EXPECT_NEAR(grad[i].item<double>(), numeric,
                  1e-6 + 1e-5 * std::abs(numeric))
          << (which == 0 ? "x" : "w0") << " element " << i;
    }
  }
}

// The reverse-time reconstruction rounds at every step; over a long
// sequence its float32 gradients must still match a float64 reference.
TEST(SrwmLayerTest, LongSequenceGradientsStayAccurateInFloat) {
  const Shape s{2, 256, 2, 16};
  Inputs in = RandomInputs(s, at::kFloat, 11);
  std::vector<at::Tensor> fused = Gradients(in, /*fused=*/true);
  Inputs exact{in.x.to(at::kDouble), in.w0.to(at::kDouble),
               in.grad_y.to(at::kDouble)};
  std::vector<at::Tensor> reference = Gradients(exact, /*fused=*/false);
  EXPECT_LE(RelativeError(fused[0].to(at::kDouble), reference[0]), 1e-4);
  EXPECT_LE(RelativeError(fused[1].to(at::kDouble), reference[1]), 1e-4);
}

TEST(SrwmLayerTest, RejectsMismatchedShapes) {
  at::Tensor x = at::randn({2, 3, 4, 5});
  EXPECT_THROW(SrwmFused(x, at::randn({4, 18, 5})), c10::Error);
  EXPECT_THROW(SrwmFused(x, at::randn({4, 19, 5}).to(at::kDouble)), c10::Error);
  EXPECT_THROW(SrwmFused(at::randn({2, 3, 4}), at::randn({4, 19, 5})),
               c10::Error);
}

}  // namespace
}  // namespace ouroboros::srwm
