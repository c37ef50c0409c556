// Learning-rate schedules (optim_config.scheduler) as pure functions of the
// training position, so a resumed run continues on exactly the same curve.
//
//   double lr = ScheduledLearningRate(config.optim_config().scheduler(),
//                                     config.optim_config().lr(),
//                                     /*step=*/1234, /*steps_per_epoch=*/938);
#ifndef OUROBOROS_API_SCHEDULE_H_
#define OUROBOROS_API_SCHEDULE_H_

#include <cstdint>

#include "ouroboros/config/config.pb.h"

namespace ouroboros {

// The learning rate for optimizer step `step` (0-based: the step about to be
// taken). Epoch-based schedules use epoch = step / steps_per_epoch
// (fractional for cosine_warm_restarts, whole for step and multistep).
double ScheduledLearningRate(const SchedulerConfig& schedule, double base_lr,
                             int64_t step, int64_t steps_per_epoch);

}  // namespace ouroboros

#endif  // OUROBOROS_API_SCHEDULE_H_
