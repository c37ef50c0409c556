// The tune pipeline's pure parts: which trials a search space gives, and
// when an early-stopping rule ends a trial. No processes, no files.
//
//   absl::StatusOr<TunePipelineConfig> tune = ParseTuneConfig(run_config);
//   absl::StatusOr<std::vector<Trial>> trials = MakeTrials(*tune, seed);
//   (*trials)[0].overrides  // {"optim_config.lr=0.0031", ...}: --set values
#ifndef PLUGINS_TUNE_SEARCH_H_
#define PLUGINS_TUNE_SEARCH_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "ouroboros/config/config.pb.h"
#include "plugins/tune/tune.pb.h"

namespace ouroboros::tune {

// Parses and checks pipeline_config ("pipeline_config.<field>: reason"),
// and fills in defaults that do not depend on the machine (search, metric,
// mode, num_trials, early stopping).
absl::StatusOr<TunePipelineConfig> ParseTuneConfig(const RunConfig& config);

// The defaults that depend on other fields: metric (score_config.monitor,
// else loss), mode (min for loss, else max), num_trials (8 for a random
// search, 0 = every point of a grid).
void FillDerivedTuneDefaults(TunePipelineConfig* tune, const RunConfig& config);

struct Trial {
  int index = 0;
  // Field path -> the value as compact JSON ("0.001", "[64,32]", "\"adam\"").
  std::map<std::string, std::string> params;
  // The same as --set flags: "path=value".
  std::vector<std::string> overrides;
};

// The searched field paths, sorted (a proto map has no order of its own).
std::vector<std::string> SearchedPaths(const TunePipelineConfig& tune);

// Grid search: the cross product of the grid/choice values, in order, cut
// to num_trials if set. Random search: num_trials draws from a generator
// seeded with `seed`. The same config and seed always give the same trials.
absl::StatusOr<std::vector<Trial>> MakeTrials(const TunePipelineConfig& tune,
                                              uint64_t seed);

// True if `value` is better than `other` for the mode ("max" or "min").
bool Better(double value, double other, const std::string& mode);

// The median stopping rule (Golovin et al., Google Vizier): after `epoch`
// (1-based), stop a trial whose best value so far is worse than the median
// of the other trials' running averages up to that epoch, once at least
// min_trials others have reached it and the trial is past grace_epochs.
// `history` holds one value per finished epoch.
bool MedianRuleStops(const std::vector<double>& history,
                     const std::vector<std::vector<double>>& others,
                     const EarlyStopping& rule, const std::string& mode);

// Asynchronous successive halving (ASHA): at rung epochs grace *
// reduction_factor^k, stop a trial whose value there is worse than the
// (1 - 1/reduction_factor) quantile of every value recorded at that rung so
// far (its own included).
bool AshaStops(const std::vector<double>& history,
               const std::vector<std::vector<double>>& others,
               const EarlyStopping& rule, const std::string& mode);

}  // namespace ouroboros::tune

#endif  // PLUGINS_TUNE_SEARCH_H_
