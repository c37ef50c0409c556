#include "ouroboros/dropout.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Functions.h>
#include <ATen/Parallel.h>
#include <ATen/core/Generator.h>

#include <cmath>
#include <mutex>

namespace ouroboros {
namespace {

constexpr uint64_t kGolden = 0x9e3779b97f4a7c15ULL;
constexpr uint64_t kLow32 = 0xffffffffULL;
// Below this many elements one thread does it: waking OpenMP's workers
// costs more than the hashing.
constexpr int64_t kGrainPairs = 16384;

// SplitMix64's output function (Steele, Lea and Flood 2014) applied to a
// counter: a counter-based generator, so any element's bits can be had
// without the ones before it.
inline uint64_t Mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t DrawSeed() {
  at::Generator generator = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  return at::check_generator<at::CPUGeneratorImpl>(generator)->random64();
}

}  // namespace

at::Tensor DropoutMask(int64_t numel, double p, uint64_t seed) {
  at::Tensor mask = at::empty({numel}, at::TensorOptions().dtype(at::kFloat));
  float* out = mask.data_ptr<float>();
  // Dropped when the element's 32 bits are below p * 2^32: with
  // probability p to within 2^-32.
  const uint64_t threshold =
      static_cast<uint64_t>(std::ceil(std::ldexp(p, 32)));
  const float keep_scale = static_cast<float>(1.0 / (1.0 - p));
  const int64_t pairs = (numel + 1) / 2;
  at::parallel_for(0, pairs, kGrainPairs, [&](int64_t begin, int64_t end) {
    for (int64_t pair = begin; pair < end; ++pair) {
      const uint64_t bits =
          Mix(seed + kGolden * static_cast<uint64_t>(pair + 1));
      const int64_t first = 2 * pair;
      out[first] = (bits & kLow32) < threshold ? 0.0f : keep_scale;
      if (first + 1 < numel) {
        out[first + 1] = (bits >> 32) < threshold ? 0.0f : keep_scale;
      }
    }
  });
  return mask;
}

at::Tensor MaskedDropout(const at::Tensor& input, double p, bool training) {
  if (!training || p == 0) return input;
  if (input.scalar_type() != at::kFloat || !input.device().is_cpu()) {
    return at::dropout(input, p, /*train=*/true);
  }
  const at::Tensor mask =
      DropoutMask(input.numel(), p, DrawSeed()).view(input.sizes());
  return at::mul(input, mask);
}

}  // namespace ouroboros
