#include "ouroboros/base/errors.h"

#include <c10/util/Exception.h>

#include "absl/strings/str_cat.h"
#include "ouroboros/base/stop_signal.h"

namespace ouroboros {

absl::Status ConfigFieldError(absl::string_view field_path,
                              absl::string_view reason) {
  return absl::InvalidArgumentError(absl::StrCat(field_path, ": ", reason));
}

absl::Status WithContext(const absl::Status& status,
                         absl::string_view context) {
  if (status.ok()) return status;
  return absl::Status(status.code(),
                      absl::StrCat(context, ": ", status.message()));
}

absl::Status CallTorch(absl::string_view what_was_running,
                       const std::function<void()>& fn) {
  try {
    fn();
    return absl::OkStatus();
  } catch (const c10::Error& e) {
    // what_without_backtrace() keeps the message and drops the C++ frames.
    return absl::InternalError(absl::StrCat(
        what_was_running, ": LibTorch: ", e.what_without_backtrace()));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat(what_was_running, ": ", e.what()));
  }
}

int ExitCodeFor(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return 0;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kDataLoss:  // a corrupt data or checkpoint file
      return 2;
    case absl::StatusCode::kCancelled:  // a stop signal (stop_signal.h)
      return StopExitCode();
    default:
      return 1;
  }
}

}  // namespace ouroboros
