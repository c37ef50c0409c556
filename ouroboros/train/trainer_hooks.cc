// The Trainer's hooks (trainer_hook.h): the config's, the built-in ones and
// the every-run ones in their one order, the view they see, and calling them.
#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "ouroboros/api/registry.h"
#include "ouroboros/base/status_macros.h"
#include "ouroboros/train/trainer.h"

namespace ouroboros {

TrainingView Trainer::View() {
  TrainingView view{&model_->module(),    optimizer_.get(),
                    state_.position.step, state_.position.epoch,
                    context_.run_dir,     writes_outputs()};
  view.actions = this;
  view.score = state_.score;
  return view;
}

absl::Status Trainer::ForEachHook(
    absl::FunctionRef<absl::Status(TrainerHook&, const TrainingView&)> event) {
  for (const NamedHook& hook : hooks_) {
    RETURN_IF_ERROR(event(*hook.hook, View()));
  }
  return absl::OkStatus();
}

absl::Status Trainer::BuildHooks() {
  hooks_.clear();
  for (int i = 0; i < config().hooks_size(); ++i) {
    absl::StatusOr<const HookEntry*> entry =
        context_.registry->FindHook(config().hooks(i).name());
    if (!entry.ok()) {
      return absl::Status(
          entry.status().code(),
          absl::StrCat("hooks[", i, "].name: ", entry.status().message()));
    }
    HookContext hook_context{context_.config, context_.config_source, i,
                             context_.run_dir};
    ASSIGN_OR_RETURN(std::unique_ptr<TrainerHook> hook,
                     (*entry)->factory(hook_context));
    hooks_.push_back(
        {absl::StrCat("hooks[", i, "] ", (*entry)->name), std::move(hook)});
    LOG(INFO) << "hook " << (*entry)->name << " from " << (*entry)->source;
  }
  for (NamedHook& builtin : BuiltinHooks(config())) {
    hooks_.push_back({"builtin " + builtin.name, std::move(builtin.hook)});
  }
  for (const HookEntry* entry : context_.registry->HooksForEveryRun()) {
    HookContext hook_context{context_.config, context_.config_source, -1,
                             context_.run_dir};
    ASSIGN_OR_RETURN(std::unique_ptr<TrainerHook> hook,
                     entry->factory(hook_context));
    hooks_.push_back({"every-run hook " + entry->name, std::move(hook)});
    LOG(INFO) << "hook " << entry->name << " (every run) from "
              << entry->source;
  }
  RETURN_IF_ERROR(RestoreComponentStates());
  return ForEachHook([](TrainerHook& hook, const TrainingView& view) {
    return hook.OnTrainBegin(view);
  });
}

}  // namespace ouroboros
