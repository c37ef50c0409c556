// Data source `fewshot_episodes`: sequential N-way K-shot episodes
// (episodes.h) as a run's data, and the few-shot scores a model reports on
// them.
//
//   "data_config": {"dataset": "fewshot_episodes",
//                   "source_config": {"ways": 5, "shots": 1,
//                                     "eval_episodes": 300}}
//
// Training episodes are drawn afresh for every step (a SampleGenerator
// seeded by (seed, rank, step): a resumed run draws the very episodes the
// interrupted one would have, and ranks draw different ones). Validation and
// test are fixed sets of episodes from the meta-validation and meta-test
// classes, the same for every model with the same seed; the MNIST digits
// (cross-domain) are DataSplits::more["mnist_digits"]. Each evaluation
// dataset carries extras["is_query"]: accuracy is over the query steps.
#ifndef PLUGINS_SRWM_EPISODE_SOURCE_H_
#define PLUGINS_SRWM_EPISODE_SOURCE_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "ouroboros/interfaces.h"
#include "plugins/srwm/srwm.pb.h"

namespace ouroboros::srwm {

inline constexpr char kEpisodeDataSource[] = "fewshot_episodes";
// DataSplits::more: the MNIST digits, cross-domain.
inline constexpr char kDigitsSplit[] = "mnist_digits";
// Dataset::extras of the evaluation sets: bool, episodes x steps.
inline constexpr char kIsQuery[] = "is_query";

// data_config.source_config with the defaults filled in, checked against
// the rest of data_config ("data_config.source_config.<field>: reason").
absl::StatusOr<FewshotEpisodesConfig> ParseEpisodesConfig(
    const RunConfig& config);

absl::Status ValidateEpisodeSource(const RunConfig& config);

absl::StatusOr<DataSplits> MakeEpisodeSplits(const DataSourceContext& context);

struct EpisodeScore {
  double loss = 0;      // cross-entropy on the query steps
  double accuracy = 0;  // on the query steps
  double ci95 = 0;      // 95% confidence half-width over episodes
  int64_t episodes = 0;
};

// `model`'s scores on a fixed set of episodes (one with extras["is_query"]),
// in evaluation mode and without gradients.
absl::StatusOr<EpisodeScore> ScoreEpisodes(Model& model,
                                           const Dataset& episodes);

// The meta-test at the end of a few-shot run: the best checkpoint (by
// validation accuracy; else the last model) scored on the meta-test episodes
// and the digits, logged and written to <run_dir>/fewshot.json (rank 0).
absl::Status MetaTest(Model& model, TrainingContext& training);

}  // namespace ouroboros::srwm

#endif  // PLUGINS_SRWM_EPISODE_SOURCE_H_
