#include "ouroboros/base/json.h"

#include <cstdlib>
#include <fstream>
#include <string>

#include "gtest/gtest.h"

namespace ouroboros {
namespace {

using google::protobuf::Value;

TEST(JsonTest, ParsesEveryKindOfValue) {
  absl::StatusOr<Value> v = ParseJson(
      R"({"a": 1.5e2, "b": [true, false, null], "c": "x\"\u00e9\n", "d": {}})");
  ASSERT_TRUE(v.ok()) << v.status();
  const auto& f = v->struct_value().fields();
  EXPECT_EQ(f.at("a").number_value(), 150);
  EXPECT_TRUE(f.at("b").list_value().values(0).bool_value());
  EXPECT_EQ(f.at("b").list_value().values(2).kind_case(), Value::kNullValue);
  EXPECT_EQ(f.at("c").string_value(), "x\"\xc3\xa9\n");
  EXPECT_TRUE(f.at("d").struct_value().fields().empty());
}

TEST(JsonTest, SurrogatePairBecomesUtf8) {
  absl::StatusOr<Value> v = ParseJson(R"("\ud83d\ude00")");
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->string_value(), "\xf0\x9f\x98\x80");
}

struct BadJson {
  const char* text;
  const char* error;
};

class JsonErrorTest : public ::testing::TestWithParam<BadJson> {};

TEST_P(JsonErrorTest, ReportsLineAndColumn) {
  absl::StatusOr<Value> v = ParseJson(GetParam().text);
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(v.status().message(), GetParam().error);
}

INSTANTIATE_TEST_SUITE_P(
    Errors, JsonErrorTest,
    ::testing::Values(
        BadJson{"",
                "line 1, column 1: unexpected end of file, expected a value"},
        BadJson{"{\"a\": 1,}", "line 1, column 9: trailing comma before '}'"},
        BadJson{"[1, 2,]", "line 1, column 7: trailing comma before ']'"},
        BadJson{"{\n  \"a\": 1,\n  \"a\": 2\n}",
                "line 3, column 3: duplicate key 'a'"},
        BadJson{"{\"a\" 1}", "line 1, column 6: expected ':' after key 'a'"},
        BadJson{"{a: 1}", "line 1, column 2: expected a quoted key"},
        BadJson{"{\"a\": tru}",
                "line 1, column 7: unexpected character 't', expected a value"},
        BadJson{"\"abc", "line 1, column 5: unterminated string"},
        BadJson{"\"a\\qb\"",
                "line 1, column 3: invalid escape '\\q' in string"},
        BadJson{"1.",
                "line 1, column 3: malformed number: digits expected "
                "after '.'"},
        BadJson{"1e999", "line 1, column 1: number 1e999 is out of range"},
        BadJson{"{} {}",
                "line 1, column 4: unexpected text after the JSON "
                "value"},
        BadJson{"[1 2]", "line 1, column 4: expected ',' or ']' in array"},
        BadJson{"{\"a\": 1 \"b\": 2}",
                "line 1, column 9: expected ',' or '}' in object"}));

TEST(JsonTest, RejectsDeepNesting) {
  std::string deep(100, '[');
  EXPECT_EQ(ParseJson(deep).status().message(),
            "line 1, column 66: nested too deeply");
}

TEST(JsonTest, FormatRoundTrips) {
  const char* text =
      R"({"b": [1, 2.5, "x"], "a": {"c": null, "d": [{"e": false}]}})";
  absl::StatusOr<Value> v = ParseJson(text);
  ASSERT_TRUE(v.ok());
  std::string formatted = FormatJson(*v);
  EXPECT_EQ(formatted, R"({
  "a": {
    "c": null,
    "d": [
      {
        "e": false
      }
    ]
  },
  "b": [1, 2.5, "x"]
}
)");
  absl::StatusOr<Value> again = ParseJson(formatted);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->DebugString(), v->DebugString());
}

TEST(JsonTest, JsonLinesAppendAndReadBackSkippingAnUnfinishedLine) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string path =
      std::string(tmp != nullptr ? tmp : "/tmp") + "/lines.jsonl";
  std::remove(path.c_str());
  EXPECT_TRUE(ReadJsonLines(path).empty());
  for (int step : {1, 2}) {
    google::protobuf::Struct record;
    (*record.mutable_fields())["step"].set_number_value(step);
    (*record.mutable_fields())["name"].set_string_value("a\"b");
    ASSERT_TRUE(AppendJsonLine(path, record).ok());
  }
  std::ofstream(path, std::ios::app) << "{\"step\": 3";  // being written
  std::vector<google::protobuf::Struct> lines = ReadJsonLines(path);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[1].fields().at("step").number_value(), 2);
  EXPECT_EQ(lines[0].fields().at("name").string_value(), "a\"b");
  absl::Status unwritable =
      AppendJsonLine("/nonexistent/dir/x.jsonl", google::protobuf::Struct());
  EXPECT_EQ(unwritable.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(std::string(unwritable.message()),
            "/nonexistent/dir/x.jsonl: cannot append");
}

}  // namespace
}  // namespace ouroboros
