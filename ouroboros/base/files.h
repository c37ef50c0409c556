// Reading, writing and making files and directories, with errors that name
// the path:
//
//   ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
//   RETURN_IF_ERROR(MakeDirectories(run_dir + "/trials"));
//   RETURN_IF_ERROR(WriteFileAtomically(path, text));
#ifndef OUROBOROS_BASE_FILES_H_
#define OUROBOROS_BASE_FILES_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace ouroboros {

// The whole file. NotFound "<path>: cannot read (<reason>)" if it cannot be
// opened.
absl::StatusOr<std::string> ReadFileToString(const std::string& path);

// Creates `dir` and its missing parents; fine if it exists. Unavailable
// "<dir>: cannot create: <reason>" otherwise.
absl::Status MakeDirectories(const std::string& dir);

// Writes to a temporary file beside `path`, fsyncs it, renames it into place
// and fsyncs the directory, so a reader never sees a half-written file, and
// after a crash or a power cut `path` holds the old or the new contents.
absl::Status WriteFileAtomically(const std::string& path,
                                 const std::string& contents);

}  // namespace ouroboros

#endif  // OUROBOROS_BASE_FILES_H_
