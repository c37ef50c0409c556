#include "ouroboros/api/score_record.h"

#include <cmath>

namespace ouroboros {

bool MonitorMaximizes(const ScoreConfig& score) {
  if (!score.mode().empty()) return score.mode() == "max";
  return score.monitor() != "loss";
}

bool UpdateScoreRecord(const ScoreConfig& score,
                       const std::map<std::string, double>& metrics,
                       ScoreRecord* record) {
  const auto found = metrics.find(score.monitor());
  const double value = found != metrics.end() ? found->second : 0.0;
  // Whether `value` beats the best so far by more than `margin`.
  const auto beats_best = [&](double margin) {
    return !record->has_best ||
           (MonitorMaximizes(score) ? value > record->best + margin
                                    : value < record->best - margin);
  };
  const bool improved = std::isfinite(value) && beats_best(score.min_delta());
  record->epochs_without_improvement =
      improved ? 0 : record->epochs_without_improvement + 1;
  if (!std::isfinite(value) || !beats_best(0)) return false;
  record->best = value;
  record->has_best = true;
  return true;
}

}  // namespace ouroboros
