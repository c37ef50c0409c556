// The two Trainer hooks of the introspective plugin; any model plugin runs
// them when its config lists them, without knowing:
//
//   "hooks": [{"name": "introspection_record",
//              "config": {"t_steps": [100, 200, 400]}}]
//   "hooks": [{"name": "introspection_jump",
//              "config": {"network": "saves/.../introspection_net.pt",
//                         "jump_steps": [200, 400]}}]
//
// introspection_record snapshots every weight (one flat float copy per
// snapshot) at 0, 0.4t, 0.7t, t and 2t of each t and, once the last one is
// taken, writes the history dataset (weight_history.h) into the run
// directory. introspection_jump keeps the snapshots its jump steps need and
// at each jump step t replaces every weight by I's prediction of w(2t) (or,
// with predictor "linear", the least-squares line's), in one batched pass;
// the optimizer's state is kept or reset (optimizer_state). Both hooks keep the
// snapshots a resume may still need in the checkpoint (their SaveState /
// LoadState, component_state.h), so a killed and resumed run records the same
// dataset and jumps the same way as an uninterrupted one. In a distributed run
// only the rank that writes outputs records (every rank jumps).
#ifndef PLUGINS_INTROSPECTIVE_HOOKS_H_
#define PLUGINS_INTROSPECTIVE_HOOKS_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/struct.pb.h"
#include "ouroboros/api/interfaces.h"
#include "plugins/introspective/introspection_net.h"
#include "plugins/introspective/introspective.pb.h"
#include "plugins/introspective/weight_history.h"

namespace ouroboros::introspective {

inline constexpr char kRecordHook[] = "introspection_record";
inline constexpr char kJumpHook[] = "introspection_jump";
// JumpHookConfig.predictor.
inline constexpr char kNetworkPredictor[] = "network";
inline constexpr char kLinearPredictor[] = "linear";
// One JSON line per jump, in the run directory.
inline constexpr char kJumpLogFile[] = "introspection_jumps.jsonl";
// Strict parsing and checks of the hooks' sections; errors read
// "<section_path>.<field>: reason". Defaults are filled in.
absl::StatusOr<RecordHookConfig> ParseRecordHookConfig(
    const google::protobuf::Struct& section, absl::string_view section_path);
absl::StatusOr<JumpHookConfig> ParseJumpHookConfig(
    const google::protobuf::Struct& section, absl::string_view section_path);

// network or linear; errors name `field`.
absl::Status CheckPredictor(const std::string& predictor,
                            const std::string& field);

// Steps of t_steps / jump_steps: at least one, each >= 5, never repeated,
// increasing when `increasing`; errors name `field`.
absl::Status CheckSteps(const google::protobuf::RepeatedField<int32_t>& steps,
                        const std::string& field, bool increasing);

// optimizer_state: refuses anything but keep and reset, and reset with
// `optimizer` adagrad (whose state LibTorch creates once, in its
// constructor). Errors name `field`.
absl::Status CheckOptimizerState(const std::string& optimizer_state,
                                 const std::string& optimizer,
                                 const std::string& field);

class RecordHook : public TrainerHook {
 public:
  // `output_path`: where the dataset goes; `seed`: of the sampling.
  RecordHook(RecordHookConfig config, std::string output_path, uint64_t seed);

  absl::Status OnTrainBegin(const TrainingView& view) override;
  absl::Status OnStepEnd(const TrainingView& view) override;
  absl::Status OnTrainEnd(const TrainingView& view) override;
  // The snapshots held and whether the dataset is written.
  absl::Status SaveState(ComponentState* state) const override;
  absl::Status LoadState(const ComponentState& state) override;

  // The snapshots held now, by step.
  const std::map<int64_t, at::Tensor>& snapshots() const { return snapshots_; }
  bool written() const { return written_; }
  double snapshot_seconds() const { return snapshot_seconds_; }

 private:
  absl::Status Take(const TrainingView& view);
  absl::Status Write(const TrainingView& view);

  RecordHookConfig config_;
  std::string output_path_;
  uint64_t seed_;
  bool active_ = true;            // false on a rank that writes no outputs
  std::vector<int64_t> t_steps_;  // the t whose history can be complete
  std::set<int64_t> wanted_;      // steps to snapshot
  ParameterLayout layout_;
  std::map<int64_t, at::Tensor> snapshots_;
  // optimizer_features: AdamDirection at each t, by t.
  std::map<int64_t, at::Tensor> directions_;
  bool written_ = false;
  double snapshot_seconds_ = 0;
};

class JumpHook : public TrainerHook {
 public:
  // `net`: I, for predictor "network"; null for "linear".
  JumpHook(JumpHookConfig config, std::unique_ptr<IntrospectionNet> net,
           std::string run_dir);

  absl::Status OnTrainBegin(const TrainingView& view) override;
  absl::Status OnStepEnd(const TrainingView& view) override;
  absl::Status OnEpochEnd(const TrainingView& view,
                          std::map<std::string, double>* metrics) override;
  // Warns about jump steps the run never reached.
  absl::Status OnTrainEnd(const TrainingView& view) override;
  // The snapshots later jumps still need.
  absl::Status SaveState(ComponentState* state) const override;
  absl::Status LoadState(const ComponentState& state) override;

  int jumps_done() const { return jumps_done_; }

 private:
  absl::Status Jump(const TrainingView& view, int64_t t);

  JumpHookConfig config_;
  std::unique_ptr<IntrospectionNet> net_;
  std::string run_dir_;
  std::set<int64_t> jumps_;   // still to do
  std::set<int64_t> wanted_;  // history steps still to snapshot
  ParameterLayout layout_;
  std::map<int64_t, at::Tensor> snapshots_;
  int jumps_done_ = 0;
};

}  // namespace ouroboros::introspective

#endif  // PLUGINS_INTROSPECTIVE_HOOKS_H_
