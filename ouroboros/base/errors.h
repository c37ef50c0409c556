// Error helpers shared by the core and the plugins.
//
// Config problems are absl::InvalidArgumentError whose message starts with the
// field path, e.g. ConfigFieldError("optim_config.lr", "must be > 0 (got -1)").
// The code that knows the file prefixes it, so the user reads
//   configs/mlp.json: optim_config.lr: must be > 0 (got -1)
// LibTorch reports errors by throwing; CallTorch() runs a piece of LibTorch
// code and turns whatever it throws into an absl::Status:
//   absl::Status s = CallTorch("mlp forward", [&] { out = net->forward(x); });
#ifndef OUROBOROS_BASE_ERRORS_H_
#define OUROBOROS_BASE_ERRORS_H_

#include <exception>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace ouroboros {

// "<field_path>: <reason>" as InvalidArgument.
absl::Status ConfigFieldError(absl::string_view field_path,
                              absl::string_view reason);

// Prefixes a status message with where it came from ("configs/x.json: ...").
absl::Status WithContext(const absl::Status& status, absl::string_view context);

// Runs fn, converting a thrown c10::Error or std::exception into an Internal
// status that names `what_was_running`.
absl::Status CallTorch(absl::string_view what_was_running,
                       const std::function<void()>& fn);

// Process exit code for a status: 0 ok, 2 for bad input (invalid argument,
// unknown name, missing or corrupt file), 128 + the signal for a run stopped
// by SIGTERM or SIGINT (kCancelled, see stop_signal.h), 1 for everything else.
int ExitCodeFor(const absl::Status& status);

}  // namespace ouroboros

#endif  // OUROBOROS_BASE_ERRORS_H_
