#include "ouroboros/base/json.h"

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "ouroboros/base/files.h"
#include "ouroboros/base/status_macros.h"

namespace ouroboros {
namespace {

using google::protobuf::Value;

constexpr int kMaxDepth = 64;

class JsonReader {
 public:
  explicit JsonReader(absl::string_view text) : text_(text) {}

  absl::StatusOr<Value> ReadDocument() {
    Value value;
    RETURN_IF_ERROR(ReadValue(&value, 0));
    SkipSpace();
    if (pos_ != text_.size())
      return Error("unexpected text after the JSON value");
    return value;
  }

 private:
  absl::Status Error(absl::string_view what) const {
    int line = 1, column = 1;
    for (size_t i = 0; i < pos_ && i < text_.size(); ++i) {
      if (text_[i] == '\n') {
        ++line;
        column = 1;
      } else {
        ++column;
      }
    }
    return absl::InvalidArgumentError(
        absl::StrCat("line ", line, ", column ", column, ": ", what));
  }

  void SkipSpace() {
    while (pos_ < text_.size() &&
           (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\n' ||
            text_[pos_] == '\r')) {
      ++pos_;
    }
  }

  bool Consume(absl::string_view word) {
    if (text_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }

  absl::Status ReadValue(Value* out, int depth) {
    if (depth > kMaxDepth) return Error("nested too deeply");
    SkipSpace();
    if (pos_ >= text_.size())
      return Error("unexpected end of file, expected a value");
    char c = text_[pos_];
    if (c == '{') return ReadObject(out, depth);
    if (c == '[') return ReadArray(out, depth);
    if (c == '"') {
      std::string s;
      RETURN_IF_ERROR(ReadString(&s));
      out->set_string_value(std::move(s));
      return absl::OkStatus();
    }
    if (Consume("true")) {
      out->set_bool_value(true);
      return absl::OkStatus();
    }
    if (Consume("false")) {
      out->set_bool_value(false);
      return absl::OkStatus();
    }
    if (Consume("null")) {
      out->set_null_value(google::protobuf::NULL_VALUE);
      return absl::OkStatus();
    }
    if (c == '-' || (c >= '0' && c <= '9')) return ReadNumber(out);
    return Error(
        absl::StrFormat("unexpected character '%c', expected a value", c));
  }

  absl::Status ReadNumber(Value* out) {
    size_t start = pos_;
    if (text_[pos_] == '-') ++pos_;
    auto digits = [this] {
      size_t n = 0;
      while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') {
        ++pos_;
        ++n;
      }
      return n;
    };
    if (digits() == 0) return Error("malformed number");
    if (pos_ < text_.size() && text_[pos_] == '.') {
      ++pos_;
      if (digits() == 0)
        return Error("malformed number: digits expected after '.'");
    }
    if (pos_ < text_.size() && (text_[pos_] == 'e' || text_[pos_] == 'E')) {
      ++pos_;
      if (pos_ < text_.size() && (text_[pos_] == '+' || text_[pos_] == '-'))
        ++pos_;
      if (digits() == 0)
        return Error("malformed number: digits expected in exponent");
    }
    std::string number(text_.substr(start, pos_ - start));
    double v = std::strtod(number.c_str(), nullptr);
    if (!std::isfinite(v)) {
      pos_ = start;
      return Error(absl::StrCat("number ", number, " is out of range"));
    }
    out->set_number_value(v);
    return absl::OkStatus();
  }

  absl::Status ReadString(std::string* out) {
    ++pos_;  // opening quote
    while (pos_ < text_.size()) {
      char c = text_[pos_++];
      if (c == '"') return absl::OkStatus();
      if (static_cast<unsigned char>(c) < 0x20) {
        --pos_;
        return Error("control character inside a string (use \\n, \\t)");
      }
      if (c != '\\') {
        out->push_back(c);
        continue;
      }
      if (pos_ >= text_.size()) break;
      char e = text_[pos_++];
      switch (e) {
        case '"':
          out->push_back('"');
          break;
        case '\\':
          out->push_back('\\');
          break;
        case '/':
          out->push_back('/');
          break;
        case 'b':
          out->push_back('\b');
          break;
        case 'f':
          out->push_back('\f');
          break;
        case 'n':
          out->push_back('\n');
          break;
        case 'r':
          out->push_back('\r');
          break;
        case 't':
          out->push_back('\t');
          break;
        case 'u': {
          RETURN_IF_ERROR(ReadUnicodeEscape(out));
          break;
        }
        default:
          pos_ -= 2;
          return Error(absl::StrFormat("invalid escape '\\%c' in string", e));
      }
    }
    return Error("unterminated string");
  }

  absl::Status ReadHex4(unsigned* code) {
    if (pos_ + 4 > text_.size()) return Error("truncated \\u escape");
    *code = 0;
    for (int i = 0; i < 4; ++i) {
      char h = text_[pos_++];
      *code <<= 4;
      if (h >= '0' && h <= '9')
        *code |= h - '0';
      else if (h >= 'a' && h <= 'f')
        *code |= h - 'a' + 10;
      else if (h >= 'A' && h <= 'F')
        *code |= h - 'A' + 10;
      else
        return Error("invalid hex digit in \\u escape");
    }
    return absl::OkStatus();
  }

  absl::Status ReadUnicodeEscape(std::string* out) {
    unsigned code = 0;
    RETURN_IF_ERROR(ReadHex4(&code));
    if (code >= 0xD800 && code < 0xDC00) {  // surrogate pair
      unsigned low = 0;
      if (!Consume("\\u")) return Error("unpaired surrogate in \\u escape");
      RETURN_IF_ERROR(ReadHex4(&low));
      if (low < 0xDC00 || low > 0xDFFF) return Error("invalid low surrogate");
      code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
    }
    if (code < 0x80) {
      out->push_back(static_cast<char>(code));
    } else if (code < 0x800) {
      out->push_back(static_cast<char>(0xC0 | (code >> 6)));
      out->push_back(static_cast<char>(0x80 | (code & 0x3F)));
    } else if (code < 0x10000) {
      out->push_back(static_cast<char>(0xE0 | (code >> 12)));
      out->push_back(static_cast<char>(0x80 | ((code >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (code & 0x3F)));
    } else {
      out->push_back(static_cast<char>(0xF0 | (code >> 18)));
      out->push_back(static_cast<char>(0x80 | ((code >> 12) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | ((code >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (code & 0x3F)));
    }
    return absl::OkStatus();
  }

  absl::Status ReadObject(Value* out, int depth) {
    ++pos_;  // {
    auto* fields = out->mutable_struct_value()->mutable_fields();
    SkipSpace();
    if (pos_ < text_.size() && text_[pos_] == '}') {
      ++pos_;
      return absl::OkStatus();
    }
    while (true) {
      SkipSpace();
      if (pos_ >= text_.size())
        return Error("unexpected end of file inside an object");
      if (text_[pos_] != '"') {
        return Error(text_[pos_] == '}' ? "trailing comma before '}'"
                                        : "expected a quoted key");
      }
      size_t key_pos = pos_;
      std::string key;
      RETURN_IF_ERROR(ReadString(&key));
      if (fields->count(key) > 0) {
        pos_ = key_pos;
        return Error(absl::StrCat("duplicate key '", key, "'"));
      }
      SkipSpace();
      if (pos_ >= text_.size() || text_[pos_] != ':') {
        return Error(absl::StrCat("expected ':' after key '", key, "'"));
      }
      ++pos_;
      RETURN_IF_ERROR(ReadValue(&(*fields)[key], depth + 1));
      SkipSpace();
      if (pos_ < text_.size() && text_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < text_.size() && text_[pos_] == '}') {
        ++pos_;
        return absl::OkStatus();
      }
      return Error("expected ',' or '}' in object");
    }
  }

  absl::Status ReadArray(Value* out, int depth) {
    ++pos_;  // [
    auto* list = out->mutable_list_value();
    SkipSpace();
    if (pos_ < text_.size() && text_[pos_] == ']') {
      ++pos_;
      return absl::OkStatus();
    }
    while (true) {
      SkipSpace();
      if (pos_ < text_.size() && text_[pos_] == ']')
        return Error("trailing comma before ']'");
      RETURN_IF_ERROR(ReadValue(list->add_values(), depth + 1));
      SkipSpace();
      if (pos_ < text_.size() && text_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < text_.size() && text_[pos_] == ']') {
        ++pos_;
        return absl::OkStatus();
      }
      return Error("expected ',' or ']' in array");
    }
  }

  absl::string_view text_;
  size_t pos_ = 0;
};

void AppendEscaped(const std::string& s, std::string* out) {
  out->push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      default:
        if (c < 0x20) {
          out->append(absl::StrFormat("\\u%04x", c));
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
  }
  out->push_back('"');
}

// indent < 0: compact, on one line.
void Format(const Value& value, int indent, std::string* out);

// Whole numbers below 1e15 without a decimal point; others with the
// shortest of %.15g..%.17g that reads back to the same double.
void FormatNumber(double v, std::string* out) {
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    out->append(absl::StrFormat("%.0f", v));
    return;
  }
  std::string text;
  for (int digits = 15; digits <= 17; ++digits) {
    text = absl::StrFormat("%.*g", digits, v);
    if (std::strtod(text.c_str(), nullptr) == v) break;
  }
  out->append(text);
}

// A list of scalars on one line; one holding lists or objects, an item a
// line (unless compact).
void FormatList(const google::protobuf::ListValue& list, int indent,
                std::string* out) {
  const auto& values = list.values();
  if (values.empty()) {
    out->append("[]");
    return;
  }
  const bool compact = indent < 0;
  const std::string pad(compact ? 0 : indent + 2, ' ');
  bool scalars = true;
  for (const Value& v : values) {
    scalars &= v.kind_case() != Value::kStructValue &&
               v.kind_case() != Value::kListValue;
  }
  out->append("[");
  for (int i = 0; i < values.size(); ++i) {
    if (i > 0) out->append(",");
    if (scalars || compact) {
      if (i > 0) out->append(" ");
    } else {
      out->append("\n" + pad);
    }
    Format(values[i], compact ? -1 : indent + 2, out);
  }
  out->append(scalars || compact ? "]" : "\n" + std::string(indent, ' ') + "]");
}

// Keys sorted, a field a line (unless compact).
void FormatObject(const google::protobuf::Struct& object, int indent,
                  std::string* out) {
  const auto& fields = object.fields();
  if (fields.empty()) {
    out->append("{}");
    return;
  }
  const bool compact = indent < 0;
  const std::string pad(compact ? 0 : indent + 2, ' ');
  std::map<std::string, const Value*> sorted;
  for (const auto& [k, v] : fields) sorted[k] = &v;
  out->append("{");
  bool first = true;
  for (const auto& [k, v] : sorted) {
    if (compact) {
      out->append(first ? "" : ", ");
    } else {
      out->append(first ? "\n" : ",\n");
    }
    first = false;
    out->append(pad);
    AppendEscaped(k, out);
    out->append(": ");
    Format(*v, compact ? -1 : indent + 2, out);
  }
  out->append(compact ? "}" : "\n" + std::string(indent, ' ') + "}");
}

void Format(const Value& value, int indent, std::string* out) {
  switch (value.kind_case()) {
    case Value::kNullValue:
    case Value::KIND_NOT_SET:
      out->append("null");
      break;
    case Value::kBoolValue:
      out->append(value.bool_value() ? "true" : "false");
      break;
    case Value::kNumberValue:
      FormatNumber(value.number_value(), out);
      break;
    case Value::kStringValue:
      AppendEscaped(value.string_value(), out);
      break;
    case Value::kListValue:
      FormatList(value.list_value(), indent, out);
      break;
    case Value::kStructValue:
      FormatObject(value.struct_value(), indent, out);
      break;
  }
}

}  // namespace

absl::StatusOr<Value> ParseJson(absl::string_view text) {
  return JsonReader(text).ReadDocument();
}

std::string FormatJson(const Value& value) {
  std::string out;
  Format(value, 0, &out);
  out.push_back('\n');
  return out;
}

absl::StatusOr<Value> ReadJsonFile(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFileToString(path);
  if (!text.ok()) return text.status();
  absl::StatusOr<Value> value = ParseJson(*text);
  if (!value.ok()) {
    return absl::Status(value.status().code(),
                        absl::StrCat(path, ": ", value.status().message()));
  }
  return value;
}

google::protobuf::Value FiniteNumbers(
    const std::map<std::string, double>& numbers) {
  google::protobuf::Value object;
  auto& fields = *object.mutable_struct_value()->mutable_fields();
  for (const auto& [name, value] : numbers) {
    if (std::isfinite(value)) fields[name].set_number_value(value);
  }
  return object;
}

absl::Status AppendJsonLine(const std::string& path,
                            const google::protobuf::Struct& record) {
  Value value;
  *value.mutable_struct_value() = record;
  std::string line;
  Format(value, -1, &line);
  std::ofstream out(path, std::ios::app);
  out << line << "\n";
  out.flush();
  if (!out) {
    return absl::UnavailableError(absl::StrCat(path, ": cannot append"));
  }
  return absl::OkStatus();
}

std::vector<google::protobuf::Struct> ReadJsonLines(const std::string& path) {
  std::vector<google::protobuf::Struct> records;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (in.eof()) break;  // no newline yet: still being written
    absl::StatusOr<Value> parsed = ParseJson(line);
    if (!parsed.ok() || !parsed->has_struct_value()) break;
    records.push_back(std::move(*parsed->mutable_struct_value()));
  }
  return records;
}

}  // namespace ouroboros
