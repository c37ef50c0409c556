#include "ouroboros/data.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include "absl/strings/str_cat.h"
#include "ouroboros/errors.h"

namespace ouroboros {

absl::StatusOr<Dataset> MakeSyntheticDataset(const SyntheticData& config,
                                             uint64_t seed) {
  Dataset data;
  absl::Status status = CallTorch("synthetic dataset", [&] {
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    const int64_t n = config.num_samples();
    const int64_t f = config.num_features();
    const int64_t c = config.num_classes();
    at::Tensor centres = at::randn({c, f}, gen, at::kFloat);
    data.targets = at::randint(c, {n}, gen, at::kLong);
    data.inputs = centres.index_select(0, data.targets) +
                  config.noise() * at::randn({n, f}, gen, at::kFloat);
    data.spec.input_shape = {f};
    data.spec.num_classes = c;
  });
  if (!status.ok()) return status;
  return data;
}

absl::StatusOr<Dataset> LoadDataset(const DataConfig& config, uint64_t seed) {
  if (config.dataset() == "synthetic") {
    return MakeSyntheticDataset(config.synthetic(), seed);
  }
  return ConfigFieldError(
      "data_config.dataset",
      absl::StrCat("unknown dataset '", config.dataset(), "'"));
}

}  // namespace ouroboros
