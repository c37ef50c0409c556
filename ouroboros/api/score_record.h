// score_config.monitor over a run's evaluations: whether a value is the
// best so far and how long the metric has not improved. The Trainer keeps
// the record (ScoreRecord, trainer_hook.h) in every checkpoint; the best
// checkpoint and early stopping hooks read it.
#ifndef OUROBOROS_API_SCORE_RECORD_H_
#define OUROBOROS_API_SCORE_RECORD_H_

#include <map>
#include <string>

#include "ouroboros/api/trainer_hook.h"
#include "ouroboros/config/config.pb.h"

namespace ouroboros {

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
