#include "ouroboros/base/stop_signal.h"

#include <signal.h>

#include <atomic>
#include <string>

#include "absl/strings/str_cat.h"

namespace ouroboros {
namespace {

// Lock-free, so the handler may touch it.
std::atomic<int> received_signal{0};

void OnStopSignal(int signal_number) {
  int expected = 0;
  if (!received_signal.compare_exchange_strong(expected, signal_number)) {
    // The second signal: the user (or the launcher) insists. Die of it.
    signal(signal_number, SIG_DFL);
    raise(signal_number);
  }
}

}  // namespace

void InstallStopSignalHandlers() {
  struct sigaction action = {};
  action.sa_handler = OnStopSignal;
  sigemptyset(&action.sa_mask);
  // Interrupted system calls restart: the loop notices the flag after the
  // step, not through EINTR somewhere inside LibTorch or Gloo.
  action.sa_flags = SA_RESTART;
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
}

int StopSignal() { return received_signal.load(); }

void RequestStop(int signal_number) {
  int expected = 0;
  received_signal.compare_exchange_strong(expected, signal_number);
}

void ClearStopRequest() { received_signal.store(0); }

absl::Status StoppedBySignal(absl::string_view what) {
  const int signal_number = StopSignal();
  return absl::CancelledError(absl::StrCat(
      "stopped by ",
      signal_number == SIGTERM  ? std::string("SIGTERM")
      : signal_number == SIGINT ? std::string("SIGINT")
                                : absl::StrCat("signal ", signal_number),
      " ", what));
}

int StopExitCode() {
  const int signal_number = StopSignal();
  return 128 + (signal_number != 0 ? signal_number : SIGINT);
}

}  // namespace ouroboros
