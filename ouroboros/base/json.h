// A strict JSON reader that reports line and column.
//
// Protobuf's JSON parser accepts trailing commas and duplicate keys and gives
// no position for syntax errors; configs are read with this instead:
//
//   absl::StatusOr<google::protobuf::Value> v = ParseJson(text);
//   // InvalidArgument: "line 3, column 12: duplicate key 'lr'"
//
// Numbers become doubles (protobuf's Value has no integer type), so integers
// beyond 2^53 lose precision.
#ifndef OUROBOROS_BASE_JSON_H_
#define OUROBOROS_BASE_JSON_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/struct.pb.h"

namespace ouroboros {

absl::StatusOr<google::protobuf::Value> ParseJson(absl::string_view text);

// Reads and parses a JSON file: NotFound naming the file if it cannot be
// read, parse errors prefixed with the path.
absl::StatusOr<google::protobuf::Value> ReadJsonFile(const std::string& path);

// Pretty-printed, two-space indent, keys in sorted order.
std::string FormatJson(const google::protobuf::Value& value);

// A JSON object of `numbers`' finite values (JSON has no NaN or
// infinity: a metric that is not finite is left out).
google::protobuf::Value FiniteNumbers(
    const std::map<std::string, double>& numbers);

// JSON lines files (one compact object per line, appended while a run goes
// and read by other processes):
//
//   AppendJsonLine(run_dir + "/evals.jsonl", record);  // {"step": 200, ...}
//   for (const google::protobuf::Struct& r : ReadJsonLines(path)) ...
//
// AppendJsonLine writes `record` as one line (keys sorted, numbers as
// FormatJson writes them: {"epoch": 1, "step": 200}) and flushes;
// Unavailable naming the file if it cannot.
absl::Status AppendJsonLine(const std::string& path,
                            const google::protobuf::Struct& record);
// The objects of the complete lines of `path`, in file order; none if the
// file is not there. A last line without its newline (still being written)
// is left out, and reading stops at the first line that is not a JSON
// object.
std::vector<google::protobuf::Struct> ReadJsonLines(const std::string& path);

}  // namespace ouroboros

#endif  // OUROBOROS_BASE_JSON_H_
