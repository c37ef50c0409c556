#include "ouroboros/runs/run_summary.h"

#include "absl/strings/str_format.h"
#include "ouroboros/api/metrics.h"
#include "ouroboros/runs/run_layout.h"

namespace ouroboros {

std::vector<std::string> RunSummary(const RunConfig& config,
                                    const TrainResult& result,
                                    const std::string& run_dir,
                                    double seconds) {
  std::vector<std::string> lines;
  lines.push_back(
      absl::StrFormat("summary   %s: model %s, optimizer %s, data %s, seed %d",
                      config.run_name().empty() ? "run" : config.run_name(),
                      config.model(), config.optim_config().name(),
                      config.data_config().dataset(), config.seed()));
  lines.push_back(absl::StrFormat(
      "  trained %d epoch%s, %d steps in %.1f s%s", result.position.epoch,
      result.position.epoch == 1 ? "" : "s", result.position.step, seconds,
      result.stopped_early ? " (stopped early)" : ""));
  const std::string monitor = config.score_config().monitor();
  if (!monitor.empty() && !result.val.empty()) {
    lines.push_back(absl::StrFormat("  best    val %s %.4f (checkpoints/%s)",
                                    monitor, result.best_metric,
                                    kBestCheckpointFile));
  }
  if (!result.val.empty() && result.val == result.test) {
    // A model whose metrics do not depend on the split (a quine scores its
    // own weights) gets one line, not two identical ones.
    lines.push_back("  val and test  " + FormatMetrics(result.val) +
                    " (the same on both splits)");
  } else {
    if (!result.val.empty()) {
      lines.push_back("  val     " + FormatMetrics(result.val) +
                      " (last epoch)");
    }
    if (!result.test.empty()) {
      lines.push_back("  test    " + FormatMetrics(result.test));
    }
  }
  for (const std::string& line : result.family_results) {
    lines.push_back("  result  " + line);
  }
  lines.push_back(absl::StrFormat(
      "  files   %s: %s, %s, %s, %s/, %s/, %s/", run_dir, kMetricsFile,
      kLogFile, kEpochRecordFile, kPlotsDir, kTensorBoardDir, kCheckpointDir));
  return lines;
}

}  // namespace ouroboros
