// For a family's own tests: does a run of `config` stopped part-way and
// resumed end exactly where an uninterrupted one ends?
//
//   absl::Status exact = CheckResumeIsExact(config, registry, dir, 7);
//   EXPECT_TRUE(exact.ok()) << exact;
//
// Runs the config's Trainer three times in `dir`: whole/, then cut/ stopped
// after optimizer step `stop_after_step` (as SIGTERM stops a run: the step
// finishes, a checkpoint is written, the run ends with kCancelled), then cut/
// resumed from that checkpoint by a fresh Trainer, as main --resume does.
// OK when the final weights (every parameter and buffer, bit for bit), the
// position and every val and test metric are the same; else
// FailedPrecondition naming the first differing tensor or metric. Anything
// the family keeps outside its module's tensors must go through its
// SaveState / LoadState (component_state.h) for this to pass.
//
// `registry` gains an every-run hook, "resume_check_stop", that does the
// stopping (it does nothing in other runs).
#ifndef OUROBOROS_TRAIN_RESUME_CHECK_H_
#define OUROBOROS_TRAIN_RESUME_CHECK_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "ouroboros/api/registry.h"
#include "ouroboros/config/config.pb.h"

namespace ouroboros {

absl::Status CheckResumeIsExact(const RunConfig& config,
                                PluginRegistry& registry,
                                const std::string& dir,
                                int64_t stop_after_step);

// What a test that runs the Trainer in its own process needs beside its
// family and data: LibTorch's Adam and SGD as optimizers "adam" and "sgd"
// (optim_config.lr only: the optimizers plugin is not loaded) and a `train`
// pipeline entry (a config names its pipeline; the test runs the Trainer
// itself, so the entry builds nothing).
absl::Status RegisterTrainerStandIns(PluginRegistry& registry);

}  // namespace ouroboros

#endif  // OUROBOROS_TRAIN_RESUME_CHECK_H_
