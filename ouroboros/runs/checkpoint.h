// Checkpoints: everything needed to continue a run exactly where it stopped.
//
//   CheckpointState state{position, score};
//   SaveCheckpoint(dir + "/step-000000500.ckpt", model.module(), *optimizer,
//                  state);
//   absl::StatusOr<CheckpointState> resumed =
//       LoadCheckpoint(path, model.module(), *optimizer);
//
// A checkpoint holds the module's parameters and buffers, the optimizer's
// state, the training position, the best metric so far and LibTorch's global
// RNG state (dropout), the components' own state (component_state.h: a
// model's, hook's or data generator's cursor, counter or snapshots, by
// owner), in a LibTorch archive wrapped in a small header with a
// CRC32C, and is written to a temporary file and renamed: a crash never
// leaves a partial checkpoint, and a corrupted one is refused by name.
//
// The weights alone also go to a `.weights.pt` file that Python reads:
//   import torch; w = torch.load("step-000000500.weights.pt")
//   model.load_state_dict(w)   # a dict of name -> tensor
#ifndef OUROBOROS_RUNS_CHECKPOINT_H_
#define OUROBOROS_RUNS_CHECKPOINT_H_

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "ouroboros/api/component_state.h"
#include "ouroboros/api/score_record.h"
#include "ouroboros/base/torch_fwd.h"
#include "ouroboros/runs/run_layout.h"

namespace ouroboros {

struct TrainingPosition {
  int64_t epoch = 0;           // epochs completed
  int64_t batch_in_epoch = 0;  // batches of the next epoch already done
  int64_t step = 0;            // optimizer steps taken in total
};

struct CheckpointState {
  TrainingPosition position;
  // score_config.monitor's best so far and the evaluations since it last
  // improved (the best checkpoint and early stopping go on from it).
  ScoreRecord score;
  // The last step's loss, and the epoch's loss so far (its sum over
  // `epoch_loss_count` steps): a run resumed mid-epoch, or at its last step,
  // reports the train losses an uninterrupted one does.
  double last_train_loss = 0;
  double epoch_loss_sum = 0;
  int64_t epoch_loss_count = 0;
  double epoch_last_lr = 0;
  // The last epoch's validation metrics: a run resumed after its last
  // epoch (killed before metrics.json) still reports them.
  std::map<std::string, double> last_val;
  // Each component's own state, by owner. When loading: false for a
  // checkpoint written before components had saved state (it loads; the
  // components start their state afresh).
  bool has_component_states = true;
  ComponentStates components;
};

absl::Status SaveCheckpoint(const std::string& path, torch::nn::Module& module,
                            const torch::optim::Optimizer& optimizer,
                            const CheckpointState& state);

// Restores module, optimizer and the global RNG; returns the position.
// DataLoss for a corrupted or foreign file, FailedPrecondition when the
// checkpoint does not fit the model (another architecture).
absl::StatusOr<CheckpointState> LoadCheckpoint(
    const std::string& path, torch::nn::Module& module,
    torch::optim::Optimizer& optimizer);

// name -> tensor (parameters and buffers), readable by Python's torch.load.
absl::Status SaveWeightsForPython(const std::string& path,
                                  torch::nn::Module& module);

// The checkpoint to resume from: `path` itself if it is a file, else the
// newest step-*.ckpt under <path>/checkpoints. NotFound if there is none.
absl::StatusOr<std::string> FindCheckpoint(const std::string& path);

// Deletes all but the newest `keep` step-*.ckpt (and their .weights.pt).
void PruneCheckpoints(const std::string& dir, int keep);

}  // namespace ouroboros

#endif  // OUROBOROS_RUNS_CHECKPOINT_H_
