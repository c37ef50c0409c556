// The strict half of config reading: a JSON value checked against a
// Protobuf message's schema before Protobuf's own JSON parser sees it.
//
//   RETURN_IF_ERROR(CheckJsonAgainstSchema(value, *TrainConfig::descriptor(),
//                                          "run_config"));
//
// Protobuf's JSON parser follows the proto3 JSON mapping, which is lenient
// where a config must not be: it takes "2" for a number, a single value for
// a list, and says "expected type.googleapis.com/ouroboros.TrainConfig" for a
// section given as a number. This check refuses each with the field's path
// and the type it expects:
//
//   run_config.epochs: invalid value "2": expected a whole number in 32-bit
//     range (a number is written without quotes: 2)
//   model_config.layer_sizes: invalid value 64: expected a list of whole
//     numbers in 32-bit range (a list is written [64])
//   run_config: invalid value 3: expected a JSON object (the TrainConfig
//     section)
//   optim_config.lrr: unknown field; did you mean 'lr'?
//
// Allowed as the JSON mapping writes them: 64-bit integers as strings of
// digits (a JSON number holds 53 bits), "NaN", "Infinity" and "-Infinity"
// for floating-point fields (the validators then say why they are refused),
// and null for any field (its default).
#ifndef OUROBOROS_CONFIG_CONFIG_SCHEMA_H_
#define OUROBOROS_CONFIG_CONFIG_SCHEMA_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/struct.pb.h"

namespace ouroboros {

// InvalidArgument "<path>.<field>: reason" (ConfigFieldError) for the first
// value that does not fit `schema`; `path` is the section's own path ("" for
// the whole config).
absl::Status CheckJsonAgainstSchema(const google::protobuf::Struct& value,
                                    const google::protobuf::Descriptor& schema,
                                    absl::string_view path);

// The known name nearest to `name` by edit distance, if it is near enough
// to be a likely typo (at most a third of the name's length, at least 1
// edit allowed, at most 3); empty otherwise.
std::string NearestName(absl::string_view name,
                        const std::vector<std::string>& known);

}  // namespace ouroboros

#endif  // OUROBOROS_CONFIG_CONFIG_SCHEMA_H_
