// What a training run ends with: the Trainer's result and the one-screen
// summary TrainerPipeline logs from it.
#ifndef OUROBOROS_RUNS_RUN_SUMMARY_H_
#define OUROBOROS_RUNS_RUN_SUMMARY_H_

#include <map>
#include <string>
#include <vector>

#include "ouroboros/config/config.pb.h"
#include "ouroboros/runs/checkpoint.h"

namespace ouroboros {

struct TrainResult {
  TrainingPosition position;
  double last_train_loss = 0;
  std::map<std::string, double> val;   // score_config metrics; empty if no val
  std::map<std::string, double> test;  // on the test set, at the end
  std::string final_checkpoint;
  // A hook (early stopping: score_config.patience) stopped the run before
  // run_config.epochs.
  bool stopped_early = false;
  double best_metric = 0;  // of score_config.monitor
  // The model's headline results (Model::SummaryLines), for the summary.
  std::vector<std::string> family_results;
};

// The one-screen summary a run ends with (TrainerPipeline logs it), e.g.
//   summary   tiny: model mlp, optimizer adam, data synthetic, seed 5
//     trained 2 epochs, 24 steps in 0.1 s
//     best    val accuracy 0.5938 (checkpoints/best.ckpt)
//     val     accuracy 0.5938, loss 0.8835 (last epoch)
//     test    accuracy 0.6562, loss 0.8084
//     files   <run_dir>: metrics.json, log.txt, epochs.jsonl, ...
std::vector<std::string> RunSummary(const RunConfig& config,
                                    const TrainResult& result,
                                    const std::string& run_dir, double seconds);

}  // namespace ouroboros

#endif  // OUROBOROS_RUNS_RUN_SUMMARY_H_
