#include "ouroboros/base/dropout.h"

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <cmath>

namespace ouroboros {
namespace {

constexpr int64_t kElements = 1 << 20;

// The fraction dropped is p within 5 standard deviations of a binomial
// count, for several p, and the kept elements are scaled by 1 / (1 - p).
TEST(DropoutMaskTest, DropsAFractionPAndScalesTheRest) {
  for (double p : {0.05, 0.2, 0.5, 0.9}) {
    const at::Tensor mask = DropoutMask(kElements, p, /*seed=*/1234);
    const double dropped = mask.eq(0).sum().item<double>() / kElements;
    const double sd = std::sqrt(p * (1 - p) / kElements);
    EXPECT_NEAR(dropped, p, 5 * sd) << "p " << p;
    const at::Tensor kept = mask.masked_select(mask.ne(0));
    EXPECT_TRUE(kept.allclose(at::full_like(kept, 1.0 / (1.0 - p))))
        << "p " << p;
  }
}

// The mask is the documented stream, element by element, whichever copy of
// the loop the CPU picked (AVX-512, AVX2 or the baseline) and at any length:
// a checkpoint resumed on another machine draws the same masks.
TEST(DropoutMaskTest, IsTheSplitMix64StreamOnEveryLengthAndThreadCount) {
  const auto reference = [](int64_t i, double p, uint64_t seed) {
    uint64_t z =
        seed + 0x9e3779b97f4a7c15ULL * static_cast<uint64_t>(i / 2 + 1);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    const uint64_t bits = i % 2 == 0 ? (z & 0xffffffffULL) : (z >> 32);
    const uint64_t threshold =
        static_cast<uint64_t>(std::ceil(std::ldexp(p, 32)));
    return bits < threshold ? 0.0f : static_cast<float>(1.0 / (1.0 - p));
  };
  const int threads = at::get_num_threads();
  for (int t : {1, 2}) {
    at::set_num_threads(t);
    for (int64_t numel : {1, 2, 7, 16, 33, 40001, 70001}) {
      const at::Tensor mask = DropoutMask(numel, 0.3, /*seed=*/99);
      const float* values = mask.data_ptr<float>();
      for (int64_t i = 0; i < numel; ++i) {
        ASSERT_EQ(values[i], reference(i, 0.3, 99))
            << "element " << i << " of " << numel << ", threads " << t;
      }
    }
  }
  at::set_num_threads(threads);
}

// The two elements made from one hash, and neighbouring hashes, are
// independent: the joint drop rate of pairs at distance 1 and 2 is p^2.
TEST(DropoutMaskTest, NeighboursAreIndependent) {
  const double p = 0.3;
  const at::Tensor dropped =
      DropoutMask(kElements, p, 99).eq(0).to(at::kDouble);
  for (int64_t distance : {1, 2, 3}) {
    const at::Tensor both = dropped.slice(0, 0, kElements - distance) *
                            dropped.slice(0, distance, kElements);
    const double joint = both.mean().item<double>();
    const double sd = std::sqrt(p * p * (1 - p * p) / kElements);
    EXPECT_NEAR(joint, p * p, 5 * sd) << "distance " << distance;
  }
}

// The mask is a function of the seed: the same seed gives the same mask
// whatever the thread count, another seed another mask; an odd element
// count is filled to the end.
TEST(DropoutMaskTest, DependsOnTheSeedOnly) {
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  const at::Tensor one_thread = DropoutMask(kElements + 1, 0.5, 7);
  at::set_num_threads(2);
  const at::Tensor two_threads = DropoutMask(kElements + 1, 0.5, 7);
  at::set_num_threads(threads);
  EXPECT_TRUE(one_thread.equal(two_threads));
  EXPECT_FALSE(one_thread.equal(DropoutMask(kElements + 1, 0.5, 8)));
  EXPECT_TRUE(one_thread.slice(0, -64).ne(0).any().item<bool>());
  EXPECT_TRUE(one_thread.slice(0, -64).eq(0).any().item<bool>());
}

// In training the output is the input times a mask drawn from the global
// generator (so seeding reproduces it and a checkpointed generator state
// resumes it), the gradient is masked the same way; in evaluation, or with
// p 0, the input passes unchanged.
TEST(MaskedDropoutTest, TrainsDeterministicallyAndEvaluatesAsIdentity) {
  const at::Tensor input = at::randn({128, 256}).requires_grad_(true);
  at::manual_seed(5);
  const at::Tensor first = MaskedDropout(input, 0.2, /*training=*/true);
  const at::Tensor second = MaskedDropout(input, 0.2, /*training=*/true);
  at::manual_seed(5);
  const at::Tensor again = MaskedDropout(input, 0.2, /*training=*/true);
  EXPECT_TRUE(first.equal(again));
  EXPECT_FALSE(first.equal(second));

  first.sum().backward();
  const at::Tensor scale = first.detach() / input.detach();
  EXPECT_TRUE(input.grad().allclose(scale.nan_to_num(0), 1e-5, 1e-6));
  EXPECT_TRUE(MaskedDropout(input, 0.2, /*training=*/false).equal(input));
  EXPECT_TRUE(MaskedDropout(input, 0.0, /*training=*/true).equal(input));
}

// Doubles take LibTorch's own dropout, with the same statistics.
TEST(MaskedDropoutTest, OtherDtypesFallBackToLibTorch) {
  const at::Tensor input = at::ones({kElements}, at::kDouble);
  const at::Tensor output = MaskedDropout(input, 0.25, /*training=*/true);
  EXPECT_EQ(output.scalar_type(), at::kDouble);
  const double dropped = output.eq(0).sum().item<double>() / kElements;
  EXPECT_NEAR(dropped, 0.25, 5 * std::sqrt(0.25 * 0.75 / kElements));
}

}  // namespace
}  // namespace ouroboros
