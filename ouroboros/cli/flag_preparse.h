// main's command line, checked word by word before Abseil parses it.
//
//   ASSIGN_OR_RETURN(PreParsedCommandLine words,
//                    PreParseCommandLine(argc, argv));
//   // words.absl_args: for absl::ParseCommandLine; words.overrides: --set
//
// absl::ParseCommandLine alone cannot serve main, for three reasons:
// - it exits 1 on an unknown or malformed flag, here or in a flagfile, and
//   bad input must exit 2 with a message that names the flag and the
//   flagfile it came from;
// - --set repeats and its values hold commas (--set=a.b=[64,32]): a
//   std::vector<std::string> flag splits at commas, and a repeated one
//   keeps only its last value (absl would also ignore a --set in a
//   flagfile);
// - glog's -v, --minloglevel and --log_dir are not Abseil flags.
// So the flagfiles are expanded here (absl's syntax), every other flag is
// looked up in Abseil's registry and parsed once, to find a bad value
// before absl does, and --set and glog's flags are taken out.
#ifndef OUROBOROS_CLI_FLAG_PREPARSE_H_
#define OUROBOROS_CLI_FLAG_PREPARSE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace ouroboros {

struct PreParsedCommandLine {
  // argv[0], then the flags left for absl::ParseCommandLine, every
  // --flagfile replaced by its flags.
  std::vector<std::string> absl_args;
  // The values of --set, in the order given.
  std::vector<std::string> overrides;
};

// InvalidArgument, naming the flag (and the flagfile), on an unknown flag,
// a bad value, a flag without its value, a word that is not a flag or a
// flagfile that cannot be read or nests more than 8 deep. Sets glog's
// FLAGS_v, FLAGS_minloglevel and FLAGS_log_dir when given.
absl::StatusOr<PreParsedCommandLine> PreParseCommandLine(int argc, char** argv);

}  // namespace ouroboros

#endif  // OUROBOROS_CLI_FLAG_PREPARSE_H_
