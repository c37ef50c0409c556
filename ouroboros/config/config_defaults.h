// Config defaults declared beside the schema, and a section as a config
// shows it: every field with the value in force.
//
// A schema declares a field's default with a field option
// (config_options.proto):
//
//   optional int32 embedding_dim = 3 [(ouroboros.default_value) = "4"];
//
// Reading a section fills each field the config left out from its declared
// default (ParseConfigSection does it, so a plugin always sees the value in
// force), and the section written back shows them all:
//
//   HypernetworkConfig parsed = ...;               // {} in the config
//   RETURN_IF_ERROR(FillDeclaredDefaults(&parsed));
//   parsed.embedding_dim();                        // 4
//   MessageToStruct(parsed);                       // {"embedding_dim": 4, ...}
//
// A default that depends on another field (a kernel size that depends on the
// architecture) is filled by the plugin's own code after these: a
// SectionDefaults function (config.h) does both for --print_config.
#ifndef OUROBOROS_CONFIG_CONFIG_DEFAULTS_H_
#define OUROBOROS_CONFIG_CONFIG_DEFAULTS_H_

#include "absl/status/status.h"
#include "google/protobuf/message.h"
#include "google/protobuf/struct.pb.h"

namespace ouroboros {

// Fills every field of `message` that is not set and declares a default:
// a singular field without presence, a repeated field that is empty. Goes
// into message fields (creating them) and the elements of repeated ones;
// leaves google.protobuf.Struct / Value / ListValue fields (a plugin's own
// section) and maps alone. Internal naming the field when a declared
// default does not parse or sits on a singular field without `optional`.
absl::Status FillDeclaredDefaults(google::protobuf::Message* message);

// `message` as a JSON object with every field: set fields, and fields
// without presence at their zero value (an unset `optional` field, one
// that does not apply, is left out).
google::protobuf::Struct MessageToStruct(
    const google::protobuf::Message& message);

}  // namespace ouroboros

#endif  // OUROBOROS_CONFIG_CONFIG_DEFAULTS_H_
