#include "ouroboros/config/config_defaults.h"

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/util/json_util.h"
#include "ouroboros/base/json.h"
#include "ouroboros/base/status_macros.h"
#include "ouroboros/config/config_options.pb.h"

namespace ouroboros {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

// A plugin's own section, or free-form JSON: not a schema to fill.
bool IsFreeForm(const Descriptor& type) {
  const std::string& name = type.full_name();
  return name == "google.protobuf.Struct" || name == "google.protobuf.Value" ||
         name == "google.protobuf.ListValue";
}

std::string ToJsonString(const Message& message, bool every_field) {
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = every_field;
  // Config messages always print (no Any, no unknown types).
  (void)google::protobuf::util::MessageToJsonString(message, &json, options);
  return json;
}

// Sets `field` of `message` from its declared default `text`.
absl::Status SetFromDefault(const FieldDescriptor& field,
                            const std::string& text, Message* message) {
  const auto error = [&](absl::string_view why) {
    return absl::InternalError(
        absl::StrCat("the declared default of ", field.full_name(), " ", why));
  };
  google::protobuf::Value value;
  if (field.type() == FieldDescriptor::TYPE_STRING && !field.is_repeated()) {
    value.set_string_value(text);
  } else {
    absl::StatusOr<google::protobuf::Value> parsed = ParseJson(text);
    if (!parsed.ok()) {
      return error(absl::StrCat("'", text,
                                "' is not JSON: ", parsed.status().message()));
    }
    value = *std::move(parsed);
  }
  google::protobuf::Struct wrapper;
  (*wrapper.mutable_fields())[field.name()] = value;
  std::unique_ptr<Message> holder(message->New());
  const auto status = google::protobuf::util::JsonStringToMessage(
      ToJsonString(wrapper, false), holder.get());
  if (!status.ok()) {
    return error(absl::StrCat(
        "'", text, "' does not fit the field: ", status.message().as_string()));
  }
  // Only `field` is set in the holder: merging sets it (a repeated field is
  // empty here, so its elements are exactly the default's).
  message->MergeFrom(*holder);
  return absl::OkStatus();
}

}  // namespace

absl::Status FillDeclaredDefaults(Message* message) {
  const Descriptor& type = *message->GetDescriptor();
  const Reflection& reflection = *message->GetReflection();
  for (int i = 0; i < type.field_count(); ++i) {
    const FieldDescriptor& field = *type.field(i);
    if (field.is_map()) continue;
    if (field.type() == FieldDescriptor::TYPE_MESSAGE) {
      if (IsFreeForm(*field.message_type())) continue;
      if (field.is_repeated()) {
        for (int j = 0; j < reflection.FieldSize(*message, &field); ++j) {
          RETURN_IF_ERROR(FillDeclaredDefaults(
              reflection.MutableRepeatedMessage(message, &field, j)));
        }
      } else {
        RETURN_IF_ERROR(
            FillDeclaredDefaults(reflection.MutableMessage(message, &field)));
      }
      continue;
    }
    if (!field.options().HasExtension(default_value)) continue;
    const std::string& text = field.options().GetExtension(default_value);
    if (field.is_repeated()) {
      if (reflection.FieldSize(*message, &field) > 0) continue;
    } else {
      if (!field.has_presence()) {
        return absl::InternalError(absl::StrCat(
            field.full_name(),
            " declares a default but is not `optional`: an explicit 0 could "
            "not be told from a field left out"));
      }
      if (reflection.HasField(*message, &field)) continue;
    }
    RETURN_IF_ERROR(SetFromDefault(field, text, message));
  }
  return absl::OkStatus();
}

google::protobuf::Struct MessageToStruct(const Message& message) {
  absl::StatusOr<google::protobuf::Value> value =
      ParseJson(ToJsonString(message, /*every_field=*/true));
  // Protobuf's own JSON of a config message always parses.
  return value.ok() ? value->struct_value() : google::protobuf::Struct();
}

}  // namespace ouroboros
