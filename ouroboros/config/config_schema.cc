#include "ouroboros/config/config_schema.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "ouroboros/base/errors.h"
#include "ouroboros/base/json.h"
#include "ouroboros/base/status_macros.h"

namespace ouroboros {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Struct;
using google::protobuf::Value;

// What a user should write for one value of `field` (its element, for a
// list).
std::string ExpectedValue(const FieldDescriptor& field) {
  switch (field.cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      return "a whole number in 32-bit range";
    case FieldDescriptor::CPPTYPE_INT64:
      return "a whole number";
    case FieldDescriptor::CPPTYPE_UINT32:
      return "a non-negative whole number in 32-bit range";
    case FieldDescriptor::CPPTYPE_UINT64:
      return "a non-negative whole number";
    case FieldDescriptor::CPPTYPE_DOUBLE:
    case FieldDescriptor::CPPTYPE_FLOAT:
      return "a number";
    case FieldDescriptor::CPPTYPE_BOOL:
      return "true or false";
    case FieldDescriptor::CPPTYPE_STRING:
      return "a string";
    case FieldDescriptor::CPPTYPE_ENUM:
      return "one of the names of " + field.enum_type()->name();
    case FieldDescriptor::CPPTYPE_MESSAGE:
      break;
  }
  const std::string& type = field.message_type()->full_name();
  if (type == "google.protobuf.Struct") return "a JSON object";
  if (type == "google.protobuf.ListValue") return "a list";
  if (type == "google.protobuf.Value") return "any JSON value";
  return absl::StrCat("a JSON object (the ", field.message_type()->name(),
                      " section)");
}

// The plural, for "a list of ...".
std::string ExpectedValues(const FieldDescriptor& field) {
  std::string one = ExpectedValue(field);
  for (const char* article : {"a ", "an "}) {
    if (absl::StartsWith(one, article)) {
      one = one.substr(strlen(article));
      // "whole number in 32-bit range" -> "whole numbers in 32-bit range",
      // "JSON object (the X section)" -> "JSON objects (the X section)".
      const size_t cut =
          std::min({one.find(" in "), one.find(" ("), one.size()});
      one.insert(cut, "s");
      return one;
    }
  }
  return "values, each " + one;
}

// The user's value as a message shows it: "2", 64, [1, 2], {...}.
std::string Described(const Value& value) {
  if (value.has_struct_value()) return "{...}";
  std::string json(absl::StripTrailingAsciiWhitespace(FormatJson(value)));
  if (json.size() > 40 || absl::StrContains(json, '\n')) {
    return value.has_list_value() ? "[...]" : json.substr(0, 40) + "...";
  }
  return json;
}

// Why a string is not the number it looks like, or how a list is written.
std::string HintForString(const Value& value) {
  if (!value.has_string_value()) return "";
  const std::string& text = value.string_value();
  double number = 0;
  if (absl::SimpleAtod(text, &number)) {
    return absl::StrCat(" (a number is written without quotes: ", text, ")");
  }
  if (absl::StrContains(text, ',')) {
    return absl::StrCat(" (a list is written [", text, "])");
  }
  return "";
}

bool IsWholeNumber(double number) {
  return std::isfinite(number) && number == std::floor(number);
}

bool Is64Bit(const FieldDescriptor& field) {
  return field.cpp_type() == FieldDescriptor::CPPTYPE_INT64 ||
         field.cpp_type() == FieldDescriptor::CPPTYPE_UINT64;
}

bool IsDigits(absl::string_view text) {
  absl::ConsumePrefix(&text, "-");
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
    return absl::ascii_isdigit(static_cast<unsigned char>(c));
  });
}

absl::Status CheckMessage(const Struct& object, const Descriptor& schema,
                          const std::string& path);

// One value (a list's element, or a field that is not a list) of `field`.
absl::Status CheckOneValue(const Value& value, const FieldDescriptor& field,
                           const std::string& path) {
  if (value.kind_case() == Value::kNullValue) return absl::OkStatus();
  const auto refuse = [&]() {
    std::string hint;
    if (field.cpp_type() != FieldDescriptor::CPPTYPE_STRING) {
      hint = HintForString(value);
    }
    return ConfigFieldError(
        path, absl::StrCat("invalid value ", Described(value), ": expected ",
                           ExpectedValue(field), hint));
  };
  switch (field.cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
    case FieldDescriptor::CPPTYPE_INT64:
    case FieldDescriptor::CPPTYPE_UINT32:
    case FieldDescriptor::CPPTYPE_UINT64:
      if (value.has_number_value()) {
        // Range and sign: Protobuf's parser says it with the same path.
        if (!IsWholeNumber(value.number_value())) return refuse();
        return absl::OkStatus();
      }
      if (value.has_string_value() && Is64Bit(field) &&
          IsDigits(value.string_value())) {
        return absl::OkStatus();
      }
      return refuse();
    case FieldDescriptor::CPPTYPE_DOUBLE:
    case FieldDescriptor::CPPTYPE_FLOAT:
      if (value.has_number_value()) return absl::OkStatus();
      if (value.has_string_value() && (value.string_value() == "NaN" ||
                                       value.string_value() == "Infinity" ||
                                       value.string_value() == "-Infinity")) {
        return absl::OkStatus();
      }
      return refuse();
    case FieldDescriptor::CPPTYPE_BOOL:
      return value.has_bool_value() ? absl::OkStatus() : refuse();
    case FieldDescriptor::CPPTYPE_STRING:
      return value.has_string_value() ? absl::OkStatus() : refuse();
    case FieldDescriptor::CPPTYPE_ENUM:
      return value.has_string_value() || value.has_number_value()
                 ? absl::OkStatus()
                 : refuse();
    case FieldDescriptor::CPPTYPE_MESSAGE:
      break;
  }
  const std::string& type = field.message_type()->full_name();
  if (type == "google.protobuf.Value") return absl::OkStatus();
  if (type == "google.protobuf.ListValue") {
    return value.has_list_value() ? absl::OkStatus() : refuse();
  }
  if (!value.has_struct_value()) return refuse();
  if (type == "google.protobuf.Struct") return absl::OkStatus();
  return CheckMessage(value.struct_value(), *field.message_type(), path);
}

const FieldDescriptor& MapValue(const FieldDescriptor& map) {
  return *map.message_type()->FindFieldByName("value");
}

absl::Status CheckField(const Value& value, const FieldDescriptor& field,
                        const std::string& path) {
  if (field.is_map()) {
    if (value.kind_case() == Value::kNullValue) return absl::OkStatus();
    if (!value.has_struct_value()) {
      return ConfigFieldError(
          path, absl::StrCat("invalid value ", Described(value),
                             ": expected a JSON object of names to ",
                             ExpectedValues(MapValue(field))));
    }
    const FieldDescriptor& entry = MapValue(field);
    for (const auto& [key, item] : value.struct_value().fields()) {
      RETURN_IF_ERROR(CheckOneValue(item, entry, absl::StrCat(path, ".", key)));
    }
    return absl::OkStatus();
  }
  if (!field.is_repeated()) return CheckOneValue(value, field, path);
  if (value.kind_case() == Value::kNullValue) return absl::OkStatus();
  if (!value.has_list_value()) {
    std::string hint;
    if (value.has_string_value() &&
        absl::StrContains(value.string_value(), ',')) {
      hint = absl::StrCat(" (a list is written [", value.string_value(), "])");
    } else if (!value.has_struct_value()) {
      hint = absl::StrCat(" (a list is written [", Described(value), "])");
    }
    return ConfigFieldError(
        path,
        absl::StrCat("invalid value ", Described(value),
                     ": expected a list of ", ExpectedValues(field), hint));
  }
  const auto& items = value.list_value().values();
  for (int i = 0; i < items.size(); ++i) {
    RETURN_IF_ERROR(
        CheckOneValue(items[i], field, absl::StrCat(path, "[", i, "]")));
  }
  return absl::OkStatus();
}

absl::Status CheckMessage(const Struct& object, const Descriptor& schema,
                          const std::string& path) {
  for (const auto& [name, value] : object.fields()) {
    const std::string field_path =
        path.empty() ? name : absl::StrCat(path, ".", name);
    const FieldDescriptor* field = schema.FindFieldByName(name);
    for (int i = 0; field == nullptr && i < schema.field_count(); ++i) {
      if (schema.field(i)->json_name() == name) field = schema.field(i);
    }
    if (field == nullptr) {
      std::vector<std::string> known;
      for (int i = 0; i < schema.field_count(); ++i) {
        known.push_back(schema.field(i)->name());
      }
      const std::string nearest = NearestName(name, known);
      return ConfigFieldError(
          field_path,
          nearest.empty()
              ? absl::StrCat("unknown field (not in the schema; known: ",
                             absl::StrJoin(known, ", "), ")")
              : absl::StrCat("unknown field; did you mean '", nearest, "'?"));
    }
    RETURN_IF_ERROR(CheckField(value, *field, field_path));
  }
  return absl::OkStatus();
}

size_t EditDistance(absl::string_view a, absl::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      const bool same =
          absl::ascii_tolower(static_cast<unsigned char>(a[i - 1])) ==
          absl::ascii_tolower(static_cast<unsigned char>(b[j - 1]));
      row[j] =
          std::min({row[j] + 1, row[j - 1] + 1, diagonal + (same ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

}  // namespace

std::string NearestName(absl::string_view name,
                        const std::vector<std::string>& known) {
  const size_t allowed =
      std::min<size_t>(3, std::max<size_t>(1, name.size() / 3));
  std::string best;
  size_t best_distance = allowed + 1;
  for (const std::string& candidate : known) {
    const size_t distance = EditDistance(name, candidate);
    if (distance < best_distance) {
      best = candidate;
      best_distance = distance;
    }
  }
  return best;
}

absl::Status CheckJsonAgainstSchema(const Struct& value,
                                    const Descriptor& schema,
                                    absl::string_view path) {
  return CheckMessage(value, schema, std::string(path));
}

}  // namespace ouroboros
