// A graceful stop on SIGTERM or SIGINT: what torchrun, Slurm and Kubernetes
// send before they kill, and what Ctrl-C sends. The first signal only sets a
// flag that the training loop reads after each step (it then finishes the
// step, writes a checkpoint and ends); a second one ends the process at once,
// as if no handler were installed.
//
//   InstallStopSignalHandlers();               // once, in main
//   ...
//   if (StopSignal() != 0) return StoppedBySignal("training at step 12 ...");
//
// A run ended this way exits with the shell's conventional code, 128 + the
// signal number (143 for SIGTERM, 130 for SIGINT): ExitCodeFor() maps
// StoppedBySignal's status (absl::StatusCode::kCancelled) to it.
#ifndef OUROBOROS_BASE_STOP_SIGNAL_H_
#define OUROBOROS_BASE_STOP_SIGNAL_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace ouroboros {

// Installs the handlers for SIGTERM and SIGINT. Idempotent.
void InstallStopSignalHandlers();

// The stop signal received so far (SIGTERM or SIGINT), or 0.
int StopSignal();

// Pretends `signal_number` arrived (for tests, and for a parent that learns
// of a stop in another way).
void RequestStop(int signal_number);

// Forgets the signal received or requested, so that a process can run
// another Trainer after a stop (resume_check.h resumes in-process).
void ClearStopRequest();

// kCancelled: "stopped by SIGTERM <what>", e.g. what = "after step 12".
absl::Status StoppedBySignal(absl::string_view what);

// 128 + StopSignal() (130 when no signal was recorded).
int StopExitCode();

}  // namespace ouroboros

#endif  // OUROBOROS_BASE_STOP_SIGNAL_H_
