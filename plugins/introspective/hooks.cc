#include "plugins/introspective/hooks.h"

#include <ATen/ATen.h>
#include <c10/util/string_utils.h>
#include <torch/nn/module.h>
#include <torch/optim/adagrad.h>
#include <torch/optim/optimizer.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "glog/logging.h"
#include "ouroboros/config.h"
#include "ouroboros/errors.h"
#include "ouroboros/plugin_api.h"
#include "ouroboros/run_dir.h"

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

absl::Status AppendLine(const std::string& path, const std::string& line) {
  std::ofstream out(path, std::ios::app);
  out << line << "\n";
  out.flush();
  if (!out)
    return absl::UnavailableError(absl::StrCat(path, ": cannot append"));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<RecordHookConfig> ParseRecordHookConfig(
    const google::protobuf::Struct& section, absl::string_view section_path) {
  RecordHookConfig config;
  if (absl::Status s = ParseConfigSection(section, section_path, &config);
      !s.ok()) {
    return s;
  }
  const std::string path(section_path);
  if (absl::Status s = CheckSteps(config.t_steps(), path + ".t_steps", false);
      !s.ok()) {
    return s;
  }
  if (config.samples_per_t() < 0) {
    return ConfigFieldError(
        path + ".samples_per_t",
        absl::StrCat("must be >= 1, or 0 for the default 100000 (got ",
                     config.samples_per_t(), ")"));
  }
  if (config.balance_bins() < 0 || config.balance_bins() > 1000) {
    return ConfigFieldError(
        path + ".balance_bins",
        absl::StrCat("must be in [1, 1000], or 0 for the default 8 (got ",
                     config.balance_bins(), ")"));
  }
  if (!config.output().empty() && !IsPlainFileName(config.output())) {
    return ConfigFieldError(
        path + ".output",
        absl::StrCat("must be a plain file name (it goes into the run "
                     "directory), got '",
                     config.output(), "'"));
  }
  if (config.samples_per_t() == 0) config.set_samples_per_t(100000);
  if (config.balance_bins() == 0) config.set_balance_bins(8);
  if (config.output().empty()) config.set_output(kHistoriesFile);
  return config;
}

absl::StatusOr<JumpHookConfig> ParseJumpHookConfig(
    const google::protobuf::Struct& section, absl::string_view section_path) {
  JumpHookConfig config;
  if (absl::Status s = ParseConfigSection(section, section_path, &config);
      !s.ok()) {
    return s;
  }
  const std::string path(section_path);
  if (config.network().empty()) {
    return ConfigFieldError(path + ".network",
                            "missing: the introspection_net.pt to apply "
                            "(written by --model=introspective)");
  }
  std::error_code ec;
  if (!std::filesystem::is_regular_file(UserPath(config.network()), ec)) {
    return ConfigFieldError(
        path + ".network",
        absl::StrCat(config.network(),
                     ": no such file (train an introspection network with "
                     "--model=introspective; it writes introspection_net.pt)"));
  }
  if (absl::Status s =
          CheckSteps(config.jump_steps(), path + ".jump_steps", true);
      !s.ok()) {
    return s;
  }
  if (config.optimizer_state().empty()) config.set_optimizer_state("keep");
  if (config.optimizer_state() != "keep" &&
      config.optimizer_state() != "reset") {
    return ConfigFieldError(path + ".optimizer_state",
                            absl::StrCat("unknown '", config.optimizer_state(),
                                         "'; known: keep, reset"));
  }
  return config;
}

RecordHook::RecordHook(RecordHookConfig config, std::string output_path,
                       uint64_t seed)
    : config_(std::move(config)),
      output_path_(std::move(output_path)),
      seed_(seed) {}

absl::Status RecordHook::OnTrainBegin(const TrainingView& view) {
  layout_ = LayoutOf(*view.module);
  for (int64_t t : config_.t_steps()) {
    if (view.step > 0) {
      // Resumed: a history that began before the resume point is lost.
      LOG(WARNING) << absl::StrFormat(
          "%s: resumed at step %d; the history of t=%d (from step 0) was not "
          "recorded and is left out",
          kRecordHook, view.step, t);
      continue;
    }
    t_steps_.push_back(t);
    for (int64_t step : HistorySteps(t)) wanted_.insert(step);
    wanted_.insert(2 * t);
  }
  if (t_steps_.empty()) return absl::OkStatus();
  LOG(INFO) << absl::StrFormat("%s: %d weights, snapshots at steps %s",
                               kRecordHook, layout_.total,
                               absl::StrJoin(wanted_, ", "));
  return Take(view);
}

absl::Status RecordHook::Take(const TrainingView& view) {
  if (wanted_.count(view.step) == 0) return absl::OkStatus();
  const Clock::time_point start = Clock::now();
  absl::Status status = CallTorch("snapshot of the weights", [&] {
    snapshots_[view.step] = Snapshot(*view.module);
  });
  snapshot_seconds_ += SecondsSince(start);
  if (!status.ok()) return status;
  if (!written_ && view.step == *wanted_.rbegin()) return Write(view);
  return absl::OkStatus();
}

absl::Status RecordHook::OnStepEnd(const TrainingView& view) {
  return Take(view);
}

absl::Status RecordHook::OnTrainEnd(const TrainingView& view) {
  if (written_ || t_steps_.empty()) return absl::OkStatus();
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
    return absl::FailedPreconditionError(absl::StrCat(
        kRecordHook, ": the run ended at step ", view.step,
        " before 2t of every t in t_steps; lower t_steps or train longer"));
  }
  SamplingOptions sampling;
  sampling.samples_per_t = config_.samples_per_t();
  sampling.balance_bins = config_.balance_bins();
  sampling.seed = seed_;
  absl::StatusOr<HistoryDataset> dataset =
      BuildHistoryDataset(snapshots_, complete, layout_, sampling);
  if (!dataset.ok()) return dataset.status();
  if (absl::Status s = SaveHistoryDataset(*dataset, output_path_); !s.ok()) {
    return s;
  }
  LOG(INFO) << absl::StrFormat(
      "%s: %d rows (t = %s) from %d snapshots of %d weights -> %s; "
      "snapshots took %.1f ms in all",
      kRecordHook, dataset->size(), absl::StrJoin(complete, ", "),
      snapshots_.size(), layout_.total, output_path_, 1000 * snapshot_seconds_);
  snapshots_.clear();
  return absl::OkStatus();
}

JumpHook::JumpHook(JumpHookConfig config, std::unique_ptr<IntrospectionNet> net,
                   std::string run_dir)
    : config_(std::move(config)),
      net_(std::move(net)),
      run_dir_(std::move(run_dir)) {}

absl::Status JumpHook::OnTrainBegin(const TrainingView& view) {
  if (config_.optimizer_state() == "reset" &&
      dynamic_cast<torch::optim::Adagrad*>(view.optimizer) != nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        kJumpHook,
        ": optimizer_state reset does not work with adagrad (its state is "
        "made once, when it is built); use keep"));
  }
  layout_ = LayoutOf(*view.module);
  for (int64_t t : config_.jump_steps()) {
    if (view.step > 0) {
      // Resumed: every history begins at step 0, before the resume point.
      if (t > view.step) {
        LOG(WARNING) << absl::StrFormat(
            "%s: resumed at step %d, after the start of the history of the "
            "jump at %d; that jump is skipped",
            kJumpHook, view.step, t);
      }
      continue;
    }
    jumps_.insert(t);
    for (int k = 0; k < 3; ++k) wanted_.insert(HistorySteps(t)[k]);
  }
  LOG(INFO) << absl::StrFormat(
      "%s: %d weights, jumps at steps %s (optimizer state: %s)", kJumpHook,
      layout_.total, absl::StrJoin(jumps_, ", "), config_.optimizer_state());
  return OnStepEnd(view);
}

absl::Status JumpHook::OnStepEnd(const TrainingView& view) {
  if (jumps_.count(view.step) > 0) {
    if (absl::Status s = Jump(view, view.step); !s.ok()) return s;
  }
  // After a jump: later histories see the weights it wrote.
  if (wanted_.count(view.step) > 0) {
    absl::Status status = CallTorch("snapshot of the weights", [&] {
      snapshots_[view.step] = Snapshot(*view.module);
    });
    if (!status.ok()) return status;
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
  at::Tensor before, after;
  bool finite = true;
  absl::Status status = CallTorch("introspection jump", [&] {
    before = Snapshot(*view.module);
    history[3] = before;
    after = PredictWeights(*net_, history, layout_);
    finite = at::isfinite(after).all().item<bool>();
  });
  if (!status.ok()) return status;
  if (!finite) {
    LOG(WARNING) << absl::StrFormat(
        "%s at step %d: the network predicted non-finite weights; no jump",
        kJumpHook, t);
    return absl::OkStatus();
  }
  if (absl::Status s = WriteSnapshot(after, *view.module); !s.ok()) return s;
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
  // Snapshots no later history needs.
  for (auto it = snapshots_.begin(); it != snapshots_.end();) {
    bool needed = false;
    for (int64_t later : jumps_) {
      for (int k = 0; k < 3; ++k) needed |= HistorySteps(later)[k] == it->first;
    }
    it = needed ? std::next(it) : snapshots_.erase(it);
  }
  if (run_dir_.empty()) return absl::OkStatus();
  return AppendLine(
      run_dir_ + "/" + kJumpLogFile,
      absl::StrFormat("{\"step\": %d, \"mean_abs_move\": %.6g, "
                      "\"mean_abs_move_so_far\": %.6g, \"ms\": %.3f}",
                      t, moved, trend, 1000 * seconds));
}

absl::Status JumpHook::OnEpochEnd(const TrainingView& view,
                                  std::map<std::string, double>* metrics) {
  (*metrics)["introspection_jumps"] = jumps_done_;
  return absl::OkStatus();
}

namespace {

absl::Status ValidateRecordHook(const google::protobuf::Struct& section,
                                absl::string_view path) {
  return ParseRecordHookConfig(section, path).status();
}

absl::Status ValidateJumpHook(const google::protobuf::Struct& section,
                              absl::string_view path) {
  return ParseJumpHookConfig(section, path).status();
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
  absl::StatusOr<std::unique_ptr<IntrospectionNet>> net =
      IntrospectionNet::Load(UserPath(config->network()));
  if (!net.ok()) return net.status();
  return std::make_unique<JumpHook>(*std::move(config), *std::move(net),
                                    context.run_dir);
}

}  // namespace

OUROBOROS_REGISTER_HOOK(kRecordHook,
                        "Records every weight's history (w(0), w(0.4t), "
                        "w(0.7t), w(t) -> w(2t)) as a dataset for the "
                        "introspection network",
                        MakeRecordHook, ValidateRecordHook);
OUROBOROS_REGISTER_HOOK(kJumpHook,
                        "Replaces every weight by the introspection "
                        "network's prediction of w(2t) at the jump steps",
                        MakeJumpHook, ValidateJumpHook);

}  // namespace ouroboros::introspective
