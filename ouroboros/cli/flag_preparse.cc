#include "ouroboros/cli/flag_preparse.h"

#include <fstream>
#include <string>
#include <vector>

#include "absl/flags/reflection.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "glog/logging.h"
#include "ouroboros/base/status_macros.h"
#include "ouroboros/runs/run_dir.h"

namespace ouroboros {
namespace {

constexpr int kMaxFlagfileDepth = 8;

// One command-line word and where it came from ("" or "flagfile F").
struct Arg {
  std::string text;
  std::string origin;
};

// "" or " (in flagfile F)".
std::string Where(const Arg& arg) {
  return arg.origin.empty() ? "" : absl::StrCat(" (in ", arg.origin, ")");
}

// `in` with every --flagfile=F replaced by F's flags (absl's syntax: one
// flag per line, blank lines and lines starting with # skipped).
absl::Status ExpandFlagfiles(const std::vector<Arg>& in, int depth,
                             std::vector<Arg>* out) {
  for (const Arg& arg : in) {
    absl::string_view text = arg.text;
    if (!absl::ConsumePrefix(&text, "--flagfile=") &&
        !absl::ConsumePrefix(&text, "-flagfile=")) {
      out->push_back(arg);
      continue;
    }
    const std::string path = UserPath(std::string(text));
    if (depth > kMaxFlagfileDepth) {
      return absl::InvalidArgumentError(
          absl::StrCat("--flagfile=", text, ": flagfiles nest too deep"));
    }
    std::ifstream file(path);
    if (!file) {
      return absl::InvalidArgumentError(
          absl::StrCat("--flagfile=", text, ": cannot read ", path));
    }
    std::vector<Arg> lines;
    for (std::string line; std::getline(file, line);) {
      absl::string_view flag = absl::StripAsciiWhitespace(line);
      if (flag.empty() || flag.front() == '#') continue;
      lines.push_back({std::string(flag), absl::StrCat("flagfile ", path)});
    }
    RETURN_IF_ERROR(ExpandFlagfiles(lines, depth + 1, out));
  }
  return absl::OkStatus();
}

// Reads the words one flag at a time; a flag's value is after its '=' or,
// for a flag that is not a bool, the next word.
class FlagReader {
 public:
  explicit FlagReader(std::vector<Arg> args) : args_(std::move(args)) {}

  bool done() const { return next_ >= args_.size(); }

  // The next word: its name (without the dashes) and its "=value".
  absl::Status Next() {
    current_ = next_++;
    absl::string_view body = args_[current_].text;
    if (body == "--") return absl::OkStatus();
    if (!absl::ConsumePrefix(&body, "--") && !absl::ConsumePrefix(&body, "-")) {
      return absl::InvalidArgumentError(
          absl::StrCat("unexpected argument '", args_[current_].text, "'",
                       where(), " (flags start with --; see --help)"));
    }
    const size_t equals = body.find('=');
    name_ = std::string(body.substr(0, equals));
    has_value_ = equals != absl::string_view::npos;
    value_ = has_value_ ? std::string(body.substr(equals + 1)) : "";
    return absl::OkStatus();
  }

  // The value of the current flag, taking the next word when it had no
  // "=value" (which `taken` then receives too).
  absl::StatusOr<std::string> Value(std::vector<std::string>* taken) {
    if (has_value_) return value_;
    if (next_ >= args_.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("flag --", name_, " needs a value", where()));
    }
    if (taken != nullptr) taken->push_back(args_[next_].text);
    return args_[next_++].text;
  }

  // Every word after the current one ("--" ends the flags).
  void TakeRest(std::vector<std::string>* out) {
    for (; next_ < args_.size(); ++next_) out->push_back(args_[next_].text);
  }

  const std::string& text() const { return args_[current_].text; }
  const std::string& name() const { return name_; }
  bool has_value() const { return has_value_; }
  std::string where() const { return Where(args_[current_]); }

 private:
  std::vector<Arg> args_;
  size_t next_ = 0;
  size_t current_ = 0;
  std::string name_;
  bool has_value_ = false;
  std::string value_;
};

bool IsGlogFlag(absl::string_view name) {
  return name == "v" || name == "minloglevel" || name == "log_dir";
}

// glog's flags, which absl does not know: -v=N (verbose lines, also
// GLOG_v), --minloglevel=N, --log_dir=DIR (log files there too).
absl::Status SetGlogFlag(FlagReader& reader) {
  ASSIGN_OR_RETURN(std::string value, reader.Value(nullptr));
  if (reader.name() == "log_dir") {
    FLAGS_log_dir = UserPath(value);
    google::SetLogDestination(google::GLOG_INFO,
                              (FLAGS_log_dir + "/main.log.").c_str());
    return absl::OkStatus();
  }
  int level = 0;
  if (!absl::SimpleAtoi(value, &level) || level < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("flag --", reader.name(), "=", value, reader.where(),
                     ": expected a whole number >= 0"));
  }
  (reader.name() == "v" ? FLAGS_v : FLAGS_minloglevel) = level;
  return absl::OkStatus();
}

// absl's own usage flags, parsed and acted on by absl.
bool IsUsageFlag(absl::string_view name) {
  return name == "help" || name == "helpfull" || name == "helpshort" ||
         name == "helppackage" || name == "helpon" || name == "helpmatch" ||
         name == "version" || name == "only_check_args";
}

// A flag of Abseil's registry (--noNAME for a bool): parsed here to find a
// bad value, and kept for absl::ParseCommandLine.
absl::Status CheckRegisteredFlag(FlagReader& reader,
                                 std::vector<std::string>* absl_args) {
  const std::string& name = reader.name();
  absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
  bool negated = false;
  if (flag == nullptr && absl::StartsWith(name, "no")) {
    flag = absl::FindCommandLineFlag(name.substr(2));
    negated = flag != nullptr && flag->IsOfType<bool>();
    if (!negated) flag = nullptr;
  }
  if (flag == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown flag --", name, reader.where(), " (see --help)"));
  }
  absl_args->push_back(reader.text());
  if (flag->IsOfType<bool>() && (negated || !reader.has_value())) {
    return absl::OkStatus();
  }
  ASSIGN_OR_RETURN(std::string value, reader.Value(absl_args));
  std::string error;
  if (!flag->ParseFrom(value, &error)) {
    return absl::InvalidArgumentError(
        absl::StrCat("flag --", name, "=", value, reader.where(), ": ", error));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<PreParsedCommandLine> PreParseCommandLine(int argc,
                                                         char** argv) {
  std::vector<Arg> given;
  for (int i = 1; i < argc; ++i) given.push_back({argv[i], ""});
  std::vector<Arg> expanded;
  RETURN_IF_ERROR(ExpandFlagfiles(given, 0, &expanded));
  PreParsedCommandLine result;
  result.absl_args.push_back(argv[0]);
  FlagReader reader(std::move(expanded));
  while (!reader.done()) {
    RETURN_IF_ERROR(reader.Next());
    if (reader.text() == "--") {  // the end of the flags
      result.absl_args.push_back(reader.text());
      reader.TakeRest(&result.absl_args);
      break;
    }
    const std::string& name = reader.name();
    if (name == "set") {
      if (!reader.has_value() && reader.done()) {
        return absl::InvalidArgumentError("--set needs field.path=value");
      }
      ASSIGN_OR_RETURN(std::string value, reader.Value(nullptr));
      result.overrides.push_back(std::move(value));
    } else if (IsGlogFlag(name)) {
      RETURN_IF_ERROR(SetGlogFlag(reader));
    } else if (IsUsageFlag(name)) {
      result.absl_args.push_back(reader.text());
    } else {
      RETURN_IF_ERROR(CheckRegisteredFlag(reader, &result.absl_args));
    }
  }
  return result;
}

}  // namespace ouroboros
