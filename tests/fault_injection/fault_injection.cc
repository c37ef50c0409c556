// A test seam, loaded only by tests (OUROBOROS_PLUGIN_PATH, see
// tests/test_util.h: KillAtStepEnvironment): a hook in every Trainer run
// that SIGKILLs its own process right after optimizer step N, once that
// step's checkpoint is written: no cleanup, like a real crash.
//
//   OUROBOROS_FAULT_KILL_AT_STEP=N   the step
//   OUROBOROS_FAULT_KILL_RANK=R      only that rank of a distributed run
//                                    (the RANK the launcher set)
#include <csignal>
#include <cstdlib>
#include <memory>

#include "ouroboros/api/interfaces.h"
#include "ouroboros/api/plugin_api.h"

namespace {

int64_t EnvNumber(const char* name, int64_t fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? std::atoll(value) : fallback;
}

class KillAtStep : public ouroboros::TrainerHook {
 public:
  explicit KillAtStep(int64_t step) : step_(step) {}
  absl::Status OnStepEnd(const ouroboros::TrainingView& view) override {
    if (view.step == step_) std::raise(SIGKILL);
    return absl::OkStatus();
  }

 private:
  const int64_t step_;
};

// A hook that does nothing when the variables do not ask for a kill, so the
// plugin can stay on the path of a whole test.
class Nothing : public ouroboros::TrainerHook {};

absl::StatusOr<std::unique_ptr<ouroboros::TrainerHook>> MakeKillAtStep(
    const ouroboros::HookContext&) {
  const int64_t step = EnvNumber("OUROBOROS_FAULT_KILL_AT_STEP", -1);
  const int64_t only_rank = EnvNumber("OUROBOROS_FAULT_KILL_RANK", -1);
  if (step < 0 || (only_rank >= 0 && only_rank != EnvNumber("RANK", 0))) {
    return std::make_unique<Nothing>();
  }
  return std::make_unique<KillAtStep>(step);
}

}  // namespace

OUROBOROS_REGISTER_HOOK_FOR_EVERY_RUN(
    "fault_injection",
    "Test seam: SIGKILLs the process after step $OUROBOROS_FAULT_KILL_AT_STEP",
    MakeKillAtStep);
