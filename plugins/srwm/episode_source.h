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
// With "layout": "sequential" the samples are streams that switch domain
// (srwm.proto, SequentialStreamConfig) and carry extras["switch_at"] and
// ["direction"]; the digits are then part of the streams.
#ifndef PLUGINS_SRWM_EPISODE_SOURCE_H_
#define PLUGINS_SRWM_EPISODE_SOURCE_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "ouroboros/api/interfaces.h"
#include "plugins/srwm/srwm.pb.h"

namespace ouroboros::srwm {

inline constexpr char kEpisodeDataSource[] = "fewshot_episodes";
// DataSplits::more: the MNIST digits, cross-domain.
inline constexpr char kDigitsSplit[] = "mnist_digits";
// Dataset::extras of the evaluation sets: bool, episodes x steps.
inline constexpr char kIsQuery[] = "is_query";
// data_config.source_config.layout of switching streams.
inline constexpr char kSequentialLayout[] = "sequential";
// Dataset::extras of sequential streams, int64 per stream: the first step
// of the second domain, and the direction (0 first -> second domain).
inline constexpr char kSwitchAt[] = "switch_at";
inline constexpr char kDirection[] = "direction";
// The examples after the switch over which recovery is scored.
inline constexpr int64_t kRecoveryWindow = 20;

// data_config.source_config with the defaults filled in, checked against
// the rest of data_config ("data_config.source_config.<field>: reason").
absl::StatusOr<FewshotEpisodesConfig> ParseEpisodesConfig(
    const RunConfig& config);

absl::Status ValidateEpisodeSource(const RunConfig& config);

// The ways of the training episodes at `step` under the config's
// curriculum (curriculum_steps, curriculum_start_ways): `ways` without one.
int WaysAtStep(const FewshotEpisodesConfig& config, int64_t step);

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

// Per-step correctness (float 0/1, episodes x steps) of `model`'s
// predictions, in evaluation mode and without gradients.
absl::StatusOr<at::Tensor> CorrectPredictions(Model& model,
                                              const Dataset& episodes);

// Accuracy against the position relative to the switch, for the streams of
// one direction: offset k is the k-th example of the second domain (k >= 0)
// or the (-k)-th before the switch.
struct SwitchCurve {
  std::vector<int64_t> offsets;
  std::vector<double> accuracy;
  std::vector<int64_t> streams;   // streams with a step at that offset
  double before_switch = 0;       // every step before the switch
  double after_switch = 0;        // every step from the switch on
  double first_after_switch = 0;  // offsets 0 .. kRecoveryWindow - 1
};

// The curves of `correct` (streams x steps, CorrectPredictions) by
// direction (0, 1): only the directions present.
std::map<int, SwitchCurve> SwitchCurves(const at::Tensor& correct,
                                        const at::Tensor& switch_at,
                                        const at::Tensor& direction);

// The meta-test at the end of a few-shot run: the best checkpoint (by
// validation accuracy; else the last model) scored on the meta-test episodes
// and the digits, logged and written to <run_dir>/fewshot.json (rank 0).
// For sequential streams, also each direction's SwitchCurve on the
// meta-test streams ("sequential" in fewshot.json). Appends each result as
// a line for the run's summary to `summary_lines` (rank 0).
absl::Status MetaTest(Model& model, TrainingContext& training,
                      std::vector<std::string>* summary_lines);

}  // namespace ouroboros::srwm

#endif  // PLUGINS_SRWM_EPISODE_SOURCE_H_
