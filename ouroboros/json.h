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
#ifndef OUROBOROS_JSON_H_
#define OUROBOROS_JSON_H_

#include <string>

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

}  // namespace ouroboros

#endif  // OUROBOROS_JSON_H_
