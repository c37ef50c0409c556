// score_config.monitor over a run's evaluations: whether a value is the
// best so far and how long the metric has not improved. The Trainer keeps
// the record in every checkpoint (checkpoint.h); the best checkpoint and
// early stopping hooks read it (trainer_hook.h: TrainingView::score).
#ifndef OUROBOROS_API_SCORE_RECORD_H_
#define OUROBOROS_API_SCORE_RECORD_H_

#include <cstdint>
#include <map>
#include <string>

#include "ouroboros/config/config.pb.h"

namespace ouroboros {

// score_config.monitor's record over the run's evaluations so far: the
// best value (when there was one) and the evaluations since the monitored
// metric last improved by more than score_config.min_delta.
struct ScoreRecord {
  bool has_best = false;
  double best = 0;
  int64_t epochs_without_improvement = 0;
};

// score_config.mode, or by default: "max" unless the monitor is the loss.
bool MonitorMaximizes(const ScoreConfig& score);

// Counts one evaluation's `metrics` into `record` and returns whether its
// monitored value is the new best. A missing monitor counts as 0; a value
// that is not finite is never the best and never an improvement. The count
// of evaluations without improvement restarts only at an improvement by
// more than score.min_delta, so a new best by less still counts as none.
bool UpdateScoreRecord(const ScoreConfig& score,
                       const std::map<std::string, double>& metrics,
                       ScoreRecord* record);

}  // namespace ouroboros

#endif  // OUROBOROS_API_SCORE_RECORD_H_
