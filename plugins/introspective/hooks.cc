#include "plugins/introspective/hooks.h"

#include <ATen/ATen.h>
#include <c10/util/string_utils.h>
#include <torch/nn/module.h>
#include <torch/optim/adagrad.h>
#include <torch/optim/optimizer.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "glog/logging.h"
#include "ouroboros/api/plugin_api.h"
#include "ouroboros/base/errors.h"
#include "ouroboros/base/files.h"
#include "ouroboros/base/json.h"
#include "ouroboros/base/status_macros.h"
#include "ouroboros/config/config.h"
#include "ouroboros/config/config_checks.h"
#include "ouroboros/runs/run_dir.h"

namespace ouroboros::introspective {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

absl::Status CheckSteps(const google::protobuf::RepeatedField<int32_t>& steps,
                        const std::string& field, bool increasing) {
  if (steps.empty()) {
    return ConfigFieldError(field, "list at least one step, e.g. [100, 200]");
  }
  for (int i = 0; i < steps.size(); ++i) {
    if (steps[i] < 5) {
      return ConfigFieldError(
          absl::StrCat(field, "[", i, "]"),
          absl::StrCat("must be >= 5, so that 0, 0.4t, 0.7t and t are "
                       "different steps (got ",
                       steps[i], ")"));
    }
    for (int j = 0; j < i; ++j) {
      if (steps[j] == steps[i] || (increasing && steps[j] > steps[i])) {
        return ConfigFieldError(
            absl::StrCat(field, "[", i, "]"),
            absl::StrCat(increasing ? "steps must increase" : "repeats",
                         " (got ", steps[j], " before ", steps[i], ")"));
      }
    }
  }
  return absl::OkStatus();
}

namespace {

bool IsPlainFileName(const std::string& name) {
  return !name.empty() && name != "." && name != ".." &&
         name.find('/') == std::string::npos;
}

}  // namespace

absl::Status CheckOptimizerState(const std::string& optimizer_state,
                                 const std::string& optimizer,
                                 const std::string& field) {
  RETURN_IF_ERROR(
      CheckOneOf(field, optimizer_state, {"keep", "reset"}, "optimizer state"));
  if (optimizer_state == "reset" && optimizer == "adagrad") {
    return ConfigFieldError(
        field,
        "reset does not work with optimizer adagrad (LibTorch creates its "
        "state once, when it is built); use keep");
  }
  return absl::OkStatus();
}

namespace {

// The snapshots go into the checkpoint as tensors named "snapshot/<step>".
constexpr char kSnapshotPrefix[] = "snapshot/";
// The recorder's Adam directions by t (optimizer_features).
constexpr char kDirectionPrefix[] = "direction/";

void SaveSnapshots(const std::map<int64_t, at::Tensor>& snapshots,
                   ComponentState* state) {
  state->SetInt("snapshots", static_cast<int64_t>(snapshots.size()));
  for (const auto& [step, flat] : snapshots) {
    state->SetTensor(absl::StrCat(kSnapshotPrefix, step), flat);
  }
}

// Every snapshot a flat float tensor of the same size.
absl::Status LoadSnapshots(const ComponentState& state,
                           std::map<int64_t, at::Tensor>* snapshots) {
  ASSIGN_OR_RETURN(const int64_t count, state.GetInt("snapshots"));
  snapshots->clear();
  for (const auto& [key, flat] : state.tensors()) {
    int64_t step = 0;
    if (absl::StartsWith(key, kDirectionPrefix)) continue;  // LoadDirections
    if (!absl::StartsWith(key, kSnapshotPrefix) ||
        !absl::SimpleAtoi(key.substr(strlen(kSnapshotPrefix)), &step)) {
      return absl::InvalidArgumentError(
          absl::StrCat("unexpected tensor '", key, "'"));
    }
    if (flat.dim() != 1 || flat.scalar_type() != at::kFloat ||
        (!snapshots->empty() &&
         flat.numel() != snapshots->begin()->second.numel())) {
      return absl::InvalidArgumentError(
          absl::StrCat("the snapshot of step ", step,
                       " is not a flat float tensor of the "
                       "same size as the others"));
    }
    (*snapshots)[step] = flat;
  }
  if (static_cast<int64_t>(snapshots->size()) != count) {
    return absl::InvalidArgumentError(absl::StrCat(
        count, " snapshots listed, ", snapshots->size(), " found"));
  }
  return absl::OkStatus();
}

// AdamDirection of the run's optimizer and model.
absl::StatusOr<at::Tensor> AdamDirectionOf(const TrainingView& view) {
  if (view.optimizer == nullptr) {
    return absl::FailedPreconditionError("the run has no optimizer");
  }
  return AdamDirection(*view.optimizer, *view.module);
}

void SaveDirections(const std::map<int64_t, at::Tensor>& directions,
                    ComponentState* state) {
  for (const auto& [t, flat] : directions) {
    state->SetTensor(absl::StrCat(kDirectionPrefix, t), flat);
  }
}

absl::Status LoadDirections(const ComponentState& state,
                            std::map<int64_t, at::Tensor>* directions) {
  directions->clear();
  for (const auto& [key, flat] : state.tensors()) {
    if (!absl::StartsWith(key, kDirectionPrefix)) continue;
    int64_t t = 0;
    if (!absl::SimpleAtoi(key.substr(strlen(kDirectionPrefix)), &t) ||
        flat.dim() != 1 || flat.scalar_type() != at::kFloat) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", key, "' is not a flat float direction of a t"));
    }
    (*directions)[t] = flat;
  }
  return absl::OkStatus();
}

// On resume at `step`: every wanted step up to it has its snapshot, of the
// model's `numel` weights.
absl::Status CheckResumedSnapshots(
    const std::set<int64_t>& wanted, int64_t step, int64_t numel,
    const std::map<int64_t, at::Tensor>& snapshots, const char* hook) {
  for (int64_t needed : wanted) {
    if (needed > step) break;
    auto it = snapshots.find(needed);
    if (it == snapshots.end()) {
      return absl::DataLossError(absl::StrCat(
          hook, ": cannot resume at step ", step, ": the snapshot of step ",
          needed, " is needed and the checkpoint does not hold it"));
    }
    if (it->second.numel() != numel) {
      return absl::DataLossError(absl::StrCat(
          hook, ": cannot resume at step ", step, ": the snapshot of step ",
          needed, " has ", it->second.numel(), " weights, the model ", numel));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<RecordHookConfig> ParseRecordHookConfig(
    const google::protobuf::Struct& section, absl::string_view section_path) {
  ASSIGN_OR_RETURN(RecordHookConfig config,
                   ParseSection<RecordHookConfig>(section, section_path));
  const std::string path(section_path);
  RETURN_IF_ERROR(CheckSteps(config.t_steps(), path + ".t_steps", false));
  RETURN_IF_ERROR(
      CheckAtLeast(path + ".samples_per_t", config.samples_per_t(), 1));
  RETURN_IF_ERROR(
      CheckInRange(path + ".balance_bins", config.balance_bins(), 1, 1000));
  if (!IsPlainFileName(config.output())) {
    return ConfigFieldError(
        path + ".output",
        absl::StrCat("must be a plain file name (it goes into the run "
                     "directory), got '",
                     config.output(), "'"));
  }
  return config;
}

absl::Status CheckPredictor(const std::string& predictor,
                            const std::string& field) {
  if (predictor == kNetworkPredictor || predictor == kLinearPredictor) {
    return absl::OkStatus();
  }
  return ConfigFieldError(
      field, absl::StrCat("unknown predictor '", predictor,
                          "'; known: ", kNetworkPredictor,
                          " (the introspection network), ", kLinearPredictor,
                          " (each weight's least-squares line)"));
}

absl::StatusOr<JumpHookConfig> ParseJumpHookConfig(
    const google::protobuf::Struct& section, absl::string_view section_path) {
  ASSIGN_OR_RETURN(JumpHookConfig config,
                   ParseSection<JumpHookConfig>(section, section_path));
  const std::string path(section_path);
  RETURN_IF_ERROR(CheckPredictor(config.predictor(), path + ".predictor"));
  if (config.predictor() != kNetworkPredictor) {
    if (!config.network().empty()) {
      return ConfigFieldError(
          path + ".network",
          absl::StrCat("predictor '", config.predictor(),
                       "' uses no network; drop the field or set predictor "
                       "\"network\""));
    }
  } else if (config.network().empty()) {
    return ConfigFieldError(path + ".network",
                            "missing: the introspection_net.pt to apply "
                            "(written by --model=introspective)");
  }
  std::error_code ec;
  if (config.predictor() == kNetworkPredictor &&
      !std::filesystem::is_regular_file(UserPath(config.network()), ec)) {
    return ConfigFieldError(
        path + ".network",
        absl::StrCat(config.network(),
                     ": no such file (train an introspection network with "
                     "--model=introspective; it writes introspection_net.pt)"));
  }
  RETURN_IF_ERROR(CheckSteps(config.jump_steps(), path + ".jump_steps", true));
  RETURN_IF_ERROR(CheckOptimizerState(config.optimizer_state(), "",
                                      path + ".optimizer_state"));
  return config;
}

RecordHook::RecordHook(RecordHookConfig config, std::string output_path,
                       uint64_t seed)
    : config_(std::move(config)),
      output_path_(std::move(output_path)),
      seed_(seed) {}

absl::Status RecordHook::OnTrainBegin(const TrainingView& view) {
  // One rank records: the others train the same weights.
  active_ = view.writes_outputs;
  if (!active_) return absl::OkStatus();
  layout_ = LayoutOf(*view.module);
  for (int64_t t : config_.t_steps()) {
    t_steps_.push_back(t);
    for (int64_t step : HistorySteps(t)) wanted_.insert(step);
    wanted_.insert(2 * t);
  }
  LOG(INFO) << absl::StrFormat("%s: %d weights, snapshots at steps %s",
                               kRecordHook, layout_.total,
                               absl::StrJoin(wanted_, ", "));
  if (view.step == 0) return Take(view);
  // Resumed at view.step (whose snapshot, if wanted, was taken before the
  // checkpoint): LoadState brought the snapshots from the checkpoint.
  if (written_) {
    LOG(INFO) << absl::StrFormat("%s: resumed at step %d; %s is complete",
                                 kRecordHook, view.step, output_path_);
    return absl::OkStatus();
  }
  RETURN_IF_ERROR(CheckResumedSnapshots(wanted_, view.step, layout_.total,
                                        snapshots_, kRecordHook));
  std::vector<int64_t> loaded;
  for (const auto& [step, flat] : snapshots_) loaded.push_back(step);
  LOG(INFO) << absl::StrFormat(
      "%s: resumed at step %d with the snapshots of steps %s", kRecordHook,
      view.step, absl::StrJoin(loaded, ", "));
  return absl::OkStatus();
}

absl::Status RecordHook::SaveState(ComponentState* state) const {
  state->SetInt("written", written_ ? 1 : 0);
  SaveSnapshots(snapshots_, state);
  SaveDirections(directions_, state);
  return absl::OkStatus();
}

absl::Status RecordHook::LoadState(const ComponentState& state) {
  ASSIGN_OR_RETURN(const int64_t written, state.GetInt("written"));
  written_ = written != 0;
  RETURN_IF_ERROR(LoadSnapshots(state, &snapshots_));
  return LoadDirections(state, &directions_);
}

absl::Status RecordHook::Take(const TrainingView& view) {
  if (!active_ || written_ || wanted_.count(view.step) == 0) {
    return absl::OkStatus();
  }
  const Clock::time_point start = Clock::now();
  absl::Status status = CallTorch("snapshot of the weights", [&] {
    snapshots_[view.step] = Snapshot(*view.module);
  });
  const bool last = view.step == *wanted_.rbegin();
  if (status.ok() && config_.optimizer_features() &&
      std::find(t_steps_.begin(), t_steps_.end(), view.step) !=
          t_steps_.end()) {
    absl::StatusOr<at::Tensor> direction = AdamDirectionOf(view);
    if (!direction.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          kRecordHook, ": optimizer_features: ", direction.status().message()));
    }
    directions_[view.step] = *direction;
  }
  snapshot_seconds_ += SecondsSince(start);
  if (!status.ok()) return status;
  if (last) return Write(view);
  return absl::OkStatus();
}

absl::Status RecordHook::OnStepEnd(const TrainingView& view) {
  return Take(view);
}

absl::Status RecordHook::OnTrainEnd(const TrainingView& view) {
  if (!active_ || written_) return absl::OkStatus();
  return Write(view);
}

absl::Status RecordHook::Write(const TrainingView& view) {
  std::vector<int64_t> complete;
  for (int64_t t : t_steps_) {
    if (snapshots_.count(2 * t) > 0) {
      complete.push_back(t);
    } else {
      LOG(WARNING) << absl::StrFormat(
          "%s: the run ended at step %d, before 2t=%d; t=%d is left out",
          kRecordHook, view.step, 2 * t, t);
    }
  }
  written_ = true;
  if (complete.empty()) {
    // Only known once the run has ended: a failure of the run (exit 1).
    return absl::AbortedError(absl::StrCat(
        kRecordHook, ": the run ended at step ", view.step,
        " before 2t of every t in t_steps, so nothing was recorded and ",
        output_path_,
        " was not written; lower t_steps or train longer (or set "
        "run_config.max_steps, which is checked before the run)"));
  }
  SamplingOptions sampling;
  sampling.samples_per_t = config_.samples_per_t();
  sampling.balance_bins = config_.balance_bins();
  sampling.seed = seed_;
  absl::StatusOr<HistoryDataset> dataset = BuildHistoryDataset(
      snapshots_, complete, layout_, sampling,
      config_.optimizer_features() ? &directions_ : nullptr);
  if (!dataset.ok()) return dataset.status();
  RETURN_IF_ERROR(SaveHistoryDataset(*dataset, output_path_));
  LOG(INFO) << absl::StrFormat(
      "%s: %d rows (t = %s) from %d snapshots of %d weights -> %s; "
      "snapshots took %.1f ms in all",
      kRecordHook, dataset->size(), absl::StrJoin(complete, ", "),
      snapshots_.size(), layout_.total, output_path_, 1000 * snapshot_seconds_);
  snapshots_.clear();
  directions_.clear();
  return absl::OkStatus();
}

JumpHook::JumpHook(JumpHookConfig config, std::unique_ptr<IntrospectionNet> net,
                   std::string run_dir)
    : config_(std::move(config)),
      net_(std::move(net)),
      run_dir_(std::move(run_dir)) {}

absl::Status JumpHook::OnTrainBegin(const TrainingView& view) {
  const bool adagrad =
      dynamic_cast<torch::optim::Adagrad*>(view.optimizer) != nullptr;
  RETURN_IF_ERROR(CheckOptimizerState(config_.optimizer_state(),
                                      adagrad ? "adagrad" : "",
                                      "introspection_jump: optimizer_state"));
  layout_ = LayoutOf(*view.module);
  for (int64_t t : config_.jump_steps()) {
    if (t <= view.step) {
      // Resumed after this jump: the checkpoint holds the weights it wrote.
      ++jumps_done_;
      continue;
    }
    jumps_.insert(t);
    for (int k = 0; k < 3; ++k) wanted_.insert(HistorySteps(t)[k]);
  }
  LOG(INFO) << absl::StrFormat(
      "%s: %d weights, jumps at steps %s (predictor %s, optimizer state: %s)",
      kJumpHook, layout_.total, absl::StrJoin(jumps_, ", "),
      config_.predictor(), config_.optimizer_state());
  if (view.step == 0) return OnStepEnd(view);
  // Resumed at view.step: the snapshots up to it were taken (after any jump
  // of their step) before the checkpoint, which holds the ones still needed.
  std::set<int64_t> needed;
  for (int64_t t : jumps_) {
    for (int k = 0; k < 3; ++k) needed.insert(HistorySteps(t)[k]);
  }
  RETURN_IF_ERROR(CheckResumedSnapshots(needed, view.step, layout_.total,
                                        snapshots_, kJumpHook));
  wanted_.erase(wanted_.begin(), wanted_.upper_bound(view.step));
  return absl::OkStatus();
}

absl::Status JumpHook::SaveState(ComponentState* state) const {
  SaveSnapshots(snapshots_, state);
  return absl::OkStatus();
}

absl::Status JumpHook::LoadState(const ComponentState& state) {
  return LoadSnapshots(state, &snapshots_);
}

absl::Status JumpHook::OnStepEnd(const TrainingView& view) {
  if (jumps_.count(view.step) > 0) {
    RETURN_IF_ERROR(Jump(view, view.step));
  }
  // After a jump: later histories see the weights it wrote.
  if (wanted_.count(view.step) > 0) {
    RETURN_IF_ERROR(CallTorch("snapshot of the weights", [&] {
      snapshots_[view.step] = Snapshot(*view.module);
    }));
    wanted_.erase(view.step);
  }
  return absl::OkStatus();
}

absl::Status JumpHook::Jump(const TrainingView& view, int64_t t) {
  jumps_.erase(t);
  const std::array<int64_t, 4> steps = HistorySteps(t);
  std::array<at::Tensor, 4> history;
  for (int k = 0; k < 3; ++k) history[k] = snapshots_.at(steps[k]);
  const Clock::time_point start = Clock::now();
  // A net that reads Adam's direction gets it at t, before the jump (and
  // before a reset drops the moments).
  at::Tensor direction;
  if (net_ != nullptr && net_->inputs() > kHistoryInputs) {
    absl::StatusOr<at::Tensor> found = AdamDirectionOf(view);
    if (!found.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(kJumpHook, " at step ", t, ": ", config_.network(),
                       " reads Adam's direction: ", found.status().message()));
    }
    direction = *found;
  }
  at::Tensor before, after;
  bool finite = true;
  absl::Status status = CallTorch("introspection jump", [&] {
    before = Snapshot(*view.module);
    history[3] = before;
    after = net_ != nullptr ? PredictWeights(*net_, history, layout_, direction)
                            : ExtrapolateLinearly(history, steps, 2 * t);
    finite = at::isfinite(after).all().item<bool>();
  });
  if (!status.ok()) return status;
  if (!finite) {
    return absl::InternalError(absl::StrFormat(
        "%s at step %d: predictor %s predicted non-finite weights%s; the "
        "weights were left as they were",
        kJumpHook, t, config_.predictor(),
        net_ != nullptr
            ? absl::StrCat(" (is ", config_.network(), " a trained network?)")
            : ""));
  }
  RETURN_IF_ERROR(WriteSnapshot(after, *view.module));
  if (config_.optimizer_state() == "reset" && view.optimizer != nullptr) {
    for (const at::Tensor& p : view.module->parameters()) {
      view.optimizer->state().erase(
          c10::guts::to_string(p.unsafeGetTensorImpl()));
    }
  }
  const double seconds = SecondsSince(start);
  ++jumps_done_;
  const double moved = (after - before).abs().mean().item<double>();
  const double trend = (before - history[0]).abs().mean().item<double>();
  LOG(INFO) << absl::StrFormat(
      "%s at step %d: %d weights jumped, mean |w(2t)-w(t)| %.3g (mean "
      "|w(t)-w(0)| %.3g) in %.1f ms",
      kJumpHook, t, layout_.total, moved, trend, 1000 * seconds);
  // Snapshots no later jump needs leave memory and later checkpoints (an
  // earlier checkpoint still holds them for a resume from there).
  for (auto it = snapshots_.begin(); it != snapshots_.end();) {
    bool needed = false;
    for (int64_t later : jumps_) {
      for (int k = 0; k < 3; ++k) needed |= HistorySteps(later)[k] == it->first;
    }
    it = needed ? std::next(it) : snapshots_.erase(it);
  }
  if (run_dir_.empty() || !view.writes_outputs) return absl::OkStatus();
  google::protobuf::Struct record;
  auto& fields = *record.mutable_fields();
  fields["step"].set_number_value(t);
  fields["mean_abs_move"].set_number_value(moved);
  fields["mean_abs_move_so_far"].set_number_value(trend);
  fields["ms"].set_number_value(1000 * seconds);
  return AppendJsonLine(run_dir_ + "/" + kJumpLogFile, record);
}

absl::Status JumpHook::OnTrainEnd(const TrainingView& view) {
  if (!jumps_.empty()) {
    LOG(WARNING) << absl::StrFormat(
        "%s: the run ended at step %d; the jumps at steps %s were never "
        "reached",
        kJumpHook, view.step, absl::StrJoin(jumps_, ", "));
  }
  return absl::OkStatus();
}

absl::Status JumpHook::OnEpochEnd(const TrainingView& /*view*/,
                                  std::map<std::string, double>* metrics) {
  (*metrics)["introspection_jumps"] = jumps_done_;
  return absl::OkStatus();
}

namespace {

absl::Status ValidateRecordHook(const google::protobuf::Struct& section,
                                absl::string_view path,
                                const RunConfig& config) {
  absl::StatusOr<RecordHookConfig> parsed =
      ParseRecordHookConfig(section, path);
  if (!parsed.ok()) return parsed.status();
  const int64_t max_steps = config.run_config().max_steps();
  for (int i = 0; i < parsed->t_steps_size(); ++i) {
    if (max_steps > 0 && 2 * parsed->t_steps(i) > max_steps) {
      return ConfigFieldError(
          absl::StrCat(path, ".t_steps[", i, "]"),
          absl::StrCat("2t = ", 2 * parsed->t_steps(i),
                       " is past run_config.max_steps ", max_steps));
    }
  }
  return absl::OkStatus();
}

// Everything MakeJumpHook will need, before anything runs: the section, the
// optimizer for optimizer_state, and the network file itself.
absl::Status ValidateJumpHook(const google::protobuf::Struct& section,
                              absl::string_view path, const RunConfig& config) {
  absl::StatusOr<JumpHookConfig> parsed = ParseJumpHookConfig(section, path);
  if (!parsed.ok()) return parsed.status();
  RETURN_IF_ERROR(CheckOptimizerState(parsed->optimizer_state(),
                                      config.optim_config().name(),
                                      absl::StrCat(path, ".optimizer_state")));
  if (parsed->predictor() != kNetworkPredictor) return absl::OkStatus();
  absl::StatusOr<std::unique_ptr<IntrospectionNet>> net =
      IntrospectionNet::Load(UserPath(parsed->network()));
  if (!net.ok()) {
    return ConfigFieldError(absl::StrCat(path, ".network"),
                            net.status().message());
  }
  return absl::OkStatus();
}

std::string SectionPath(const HookContext& context) {
  return absl::StrCat("hooks[", context.index, "].config");
}

absl::StatusOr<std::unique_ptr<TrainerHook>> MakeRecordHook(
    const HookContext& context) {
  absl::StatusOr<RecordHookConfig> config = ParseRecordHookConfig(
      context.config->hooks(context.index).config(), SectionPath(context));
  if (!config.ok()) return WithContext(config.status(), context.config_source);
  const std::string output = context.run_dir + "/" + config->output();
  return std::make_unique<RecordHook>(*std::move(config), output,
                                      context.config->seed());
}

absl::StatusOr<std::unique_ptr<TrainerHook>> MakeJumpHook(
    const HookContext& context) {
  absl::StatusOr<JumpHookConfig> config = ParseJumpHookConfig(
      context.config->hooks(context.index).config(), SectionPath(context));
  if (!config.ok()) return WithContext(config.status(), context.config_source);
  std::unique_ptr<IntrospectionNet> net;  // none for the linear baseline
  if (config->predictor() == kNetworkPredictor) {
    ASSIGN_OR_RETURN(net, IntrospectionNet::Load(UserPath(config->network())));
  }
  return std::make_unique<JumpHook>(*std::move(config), std::move(net),
                                    context.run_dir);
}

}  // namespace

OUROBOROS_REGISTER_HOOK(kRecordHook,
                        "Records every weight's history (w(0), w(0.4t), "
                        "w(0.7t), w(t) -> w(2t)) as a dataset for the "
                        "introspection network",
                        MakeRecordHook, ValidateRecordHook,
                        SectionDefaultsOf<RecordHookConfig>());
OUROBOROS_REGISTER_HOOK(kJumpHook,
                        "Replaces every weight by the introspection "
                        "network's prediction of w(2t) at the jump steps",
                        MakeJumpHook, ValidateJumpHook,
                        SectionDefaultsOf<JumpHookConfig>());

}  // namespace ouroboros::introspective
