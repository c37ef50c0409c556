#include "ouroboros/api/schedule.h"

#include <algorithm>
#include <cmath>

namespace ouroboros {

double ScheduledLearningRate(const SchedulerConfig& schedule, double base_lr,
                             int64_t step, int64_t steps_per_epoch) {
  const std::string& name = schedule.name();
  const int64_t whole_epoch = step / std::max<int64_t>(1, steps_per_epoch);
  double lr = base_lr;
  if (name == "step") {
    lr = base_lr *
         std::pow(schedule.gamma(), whole_epoch / schedule.step_size());
  } else if (name == "multistep") {
    int passed = 0;
    for (int m : schedule.milestones()) passed += whole_epoch >= m ? 1 : 0;
    lr = base_lr * std::pow(schedule.gamma(), passed);
  } else if (name == "cosine_warm_restarts") {
    // As torch.optim.lr_scheduler.CosineAnnealingWarmRestarts stepped with a
    // fractional epoch.
    double epoch =
        static_cast<double>(step) / std::max<int64_t>(1, steps_per_epoch);
    double period = schedule.t_0();
    const int mult = std::max(1, schedule.t_mult());
    if (mult == 1) {
      epoch = std::fmod(epoch, period);
    } else {
      // Periods t_0, t_0*m, t_0*m^2, ...: find the current one.
      int n = static_cast<int>(std::floor(
          std::log(epoch / schedule.t_0() * (mult - 1) + 1) / std::log(mult)));
      epoch -= schedule.t_0() * (std::pow(mult, n) - 1) / (mult - 1);
      period = schedule.t_0() * std::pow(mult, n);
    }
    lr = schedule.eta_min() + (base_lr - schedule.eta_min()) *
                                  (1 + std::cos(M_PI * epoch / period)) / 2;
  } else if (name == "cyclic") {
    // Triangular cycle of 2 * step_size_up steps.
    const double up = schedule.step_size_up();
    double position = std::fmod(static_cast<double>(step), 2 * up);
    double height = position < up ? position / up : 2 - position / up;
    lr = base_lr + (schedule.max_lr() - base_lr) * height;
  }
  if (schedule.warmup_steps() > 0 && step < schedule.warmup_steps()) {
    lr *= static_cast<double>(step + 1) / schedule.warmup_steps();
  }
  return lr;
}

}  // namespace ouroboros
