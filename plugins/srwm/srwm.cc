#include "plugins/srwm/srwm.h"

#include "absl/strings/str_cat.h"
#include "ouroboros/api/plugin_api.h"
#include "ouroboros/base/errors.h"
#include "ouroboros/base/status_macros.h"
#include "plugins/srwm/default_config.h"
#include "plugins/srwm/episode_source.h"

namespace ouroboros::srwm {

absl::StatusOr<std::unique_ptr<Model>> MakeSrwm(const ModelContext& context) {
  return MakeFewShotModel(context);
}

absl::Status ValidateSrwmConfig(const RunConfig& config) {
  RETURN_IF_ERROR(ParseSrwmConfig(config).status());
  if (config.data_config().dataset() != kEpisodeDataSource) {
    return ConfigFieldError(
        "data_config.dataset",
        absl::StrCat("the srwm model learns from few-shot episodes: set \"",
                     kEpisodeDataSource, "\" (got '",
                     config.data_config().dataset(), "')"));
  }
  return absl::OkStatus();
}

OUROBOROS_REGISTER_MODEL(
    "srwm",
    "Few-shot learner on a self-referential weight matrix (or its baselines "
    "DeltaNet, Fake-SR, LSTM); data source fewshot_episodes",
    MakeSrwm, kDefaultConfigJson, ValidateSrwmConfig,
    SectionDefaultsOf<SrwmConfig>(FillDerivedSrwmDefaults));
OUROBOROS_REGISTER_DATA_SOURCE(
    kEpisodeDataSource,
    "Sequential N-way K-shot episodes: rotated Fashion-MNIST classes (or "
    "synthetic), drawn afresh each step; MNIST digits cross-domain",
    MakeEpisodeSplits, ValidateEpisodeSource,
    SectionDefaultsOf<FewshotEpisodesConfig>());

}  // namespace ouroboros::srwm
