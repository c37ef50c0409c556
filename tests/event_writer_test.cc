// Reads EventWriter's files back with a reader written here from the
// TFRecord and protobuf wire-format specs: its own bit-by-bit CRC32C and its
// own decoder, none of the writer's code or generated classes.
#include "ouroboros/runs/event_writer.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ouroboros/base/crc32c.h"
#include "tests/test_util.h"

namespace ouroboros {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

uint32_t BitwiseCrc32c(const std::string& data) {
  uint32_t crc = 0xFFFFFFFF;
  for (unsigned char byte : data) {
    crc ^= byte;
    for (int bit = 0; bit < 8; ++bit) {
      crc = (crc & 1) ? (crc >> 1) ^ 0x82F63B78 : crc >> 1;
    }
  }
  return ~crc;
}

uint32_t Masked(uint32_t crc) {
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

uint64_t LittleEndian(const std::string& s, size_t at, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) {
    v |= uint64_t{static_cast<unsigned char>(s[at + i])} << (8 * i);
  }
  return v;
}

// Splits a TFRecord file into its payloads, failing on any bad CRC.
bool ReadRecords(const std::string& file, std::vector<std::string>* records,
                 std::string* error) {
  size_t at = 0;
  while (at < file.size()) {
    if (at + 12 > file.size()) {
      *error = "truncated header";
      return false;
    }
    uint64_t length = LittleEndian(file, at, 8);
    if (Masked(BitwiseCrc32c(file.substr(at, 8))) !=
        LittleEndian(file, at + 8, 4)) {
      *error = "bad length crc";
      return false;
    }
    if (at + 12 + length + 4 > file.size()) {
      *error = "truncated record";
      return false;
    }
    std::string data = file.substr(at + 12, length);
    if (Masked(BitwiseCrc32c(data)) !=
        LittleEndian(file, at + 12 + length, 4)) {
      *error = "bad data crc";
      return false;
    }
    records->push_back(data);
    at += 12 + length + 4;
  }
  return true;
}

// A protobuf message decoded to field number -> raw values.
struct Fields {
  std::multimap<int, uint64_t> varints;   // wire type 0
  std::multimap<int, uint64_t> fixed64;   // wire type 1
  std::multimap<int, std::string> bytes;  // wire type 2
  std::multimap<int, uint32_t> fixed32;   // wire type 5
};

uint64_t Varint(const std::string& s, size_t* at) {
  uint64_t v = 0;
  for (int shift = 0;; shift += 7) {
    unsigned char b = s.at((*at)++);
    v |= uint64_t{b & 0x7fu} << shift;
    if (!(b & 0x80)) return v;
  }
}

Fields Decode(const std::string& s) {
  Fields f;
  size_t at = 0;
  while (at < s.size()) {
    uint64_t key = Varint(s, &at);
    int field = static_cast<int>(key >> 3);
    switch (key & 7) {
      case 0:
        f.varints.emplace(field, Varint(s, &at));
        break;
      case 1:
        f.fixed64.emplace(field, LittleEndian(s, at, 8));
        at += 8;
        break;
      case 2: {
        uint64_t n = Varint(s, &at);
        f.bytes.emplace(field, s.substr(at, n));
        at += n;
        break;
      }
      case 5:
        f.fixed32.emplace(field, static_cast<uint32_t>(LittleEndian(s, at, 4)));
        at += 4;
        break;
      default:
        ADD_FAILURE() << "unexpected wire type " << (key & 7);
        return f;
    }
  }
  return f;
}

double AsDouble(uint64_t bits) {
  double d;
  std::memcpy(&d, &bits, 8);
  return d;
}
float AsFloat(uint32_t bits) {
  float x;
  std::memcpy(&x, &bits, 4);
  return x;
}

class EventWriterTest : public testing::BuiltFilesTest {
 protected:
  std::vector<std::string> Records(const std::string& path) {
    std::vector<std::string> records;
    std::string error;
    EXPECT_TRUE(ReadRecords(testing::ReadFile(path), &records, &error))
        << error;
    return records;
  }
};

TEST(Crc32cTest, KnownVectors) {
  EXPECT_EQ(Crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(Crc32c(std::string(32, '\0')), 0x8A9136AAu);
  EXPECT_EQ(Crc32c(""), 0u);
  EXPECT_EQ(MaskedCrc32c("123456789"), Masked(0xE3069283u));
  EXPECT_EQ(BitwiseCrc32c("123456789"), 0xE3069283u);
}

TEST_F(EventWriterTest, ScalarsReadBackExactly) {
  std::string path;
  {
    auto writer = EventWriter::Create((scratch() / "tb").string());
    ASSERT_TRUE(writer.ok()) << writer.status();
    path = (*writer)->path();
    EXPECT_THAT(fs::path(path).filename().string(),
                ::testing::StartsWith("events.out.tfevents."));
    ASSERT_TRUE((*writer)->AddScalar("train/loss", 10, 0.5).ok());
    ASSERT_TRUE((*writer)->AddScalar("train/loss", 20, 0.25).ok());
    ASSERT_TRUE((*writer)->AddScalar("val/accuracy", 20, 0.875).ok());
  }
  std::vector<std::string> records = Records(path);
  ASSERT_EQ(records.size(), 4u);
  Fields first = Decode(records[0]);
  EXPECT_EQ(first.bytes.find(3)->second, "brain.Event:2");
  EXPECT_GT(AsDouble(first.fixed64.find(1)->second), 1.6e9);  // wall time

  struct Expected {
    int64_t step;
    std::string tag;
    float value;
  };
  std::vector<Expected> expected = {{10, "train/loss", 0.5f},
                                    {20, "train/loss", 0.25f},
                                    {20, "val/accuracy", 0.875f}};
  for (size_t i = 0; i < expected.size(); ++i) {
    Fields event = Decode(records[i + 1]);
    EXPECT_EQ(static_cast<int64_t>(event.varints.find(2)->second),
              expected[i].step);
    Fields summary = Decode(event.bytes.find(5)->second);
    Fields value = Decode(summary.bytes.find(1)->second);
    EXPECT_EQ(value.bytes.find(1)->second, expected[i].tag);
    EXPECT_EQ(AsFloat(value.fixed32.find(2)->second), expected[i].value);
  }
}

TEST_F(EventWriterTest, SessionStartMarksAResumedRun) {
  std::string path;
  {
    auto writer = EventWriter::Create((scratch() / "tb").string());
    ASSERT_TRUE(writer.ok()) << writer.status();
    path = (*writer)->path();
    ASSERT_TRUE((*writer)->AddSessionStart(7, "ckpt/step-7.ckpt").ok());
  }
  std::vector<std::string> records = Records(path);
  ASSERT_EQ(records.size(), 2u);
  Fields event = Decode(records[1]);
  EXPECT_EQ(event.varints.find(2)->second, 7u);  // step
  // tensorflow/core/util/event.proto: Event.session_log = 7,
  // SessionLog.status = 1 (START = 1), checkpoint_path = 2.
  Fields session = Decode(event.bytes.find(7)->second);
  EXPECT_EQ(session.varints.find(1)->second, 1u);
  EXPECT_EQ(session.bytes.find(2)->second, "ckpt/step-7.ckpt");
}

TEST_F(EventWriterTest, HistogramCountsAddUp) {
  std::string path;
  {
    auto writer = EventWriter::Create(scratch().string());
    ASSERT_TRUE(writer.ok());
    path = (*writer)->path();
    std::vector<float> values;
    for (int i = 0; i < 1000; ++i) values.push_back(i * 0.01f - 3);
    ASSERT_TRUE((*writer)->AddHistogram("weights/fc", 7, values).ok());
  }
  std::vector<std::string> records = Records(path);
  ASSERT_EQ(records.size(), 2u);
  Fields event = Decode(records[1]);
  EXPECT_EQ(event.varints.find(2)->second, 7u);
  Fields value =
      Decode(Decode(event.bytes.find(5)->second).bytes.find(1)->second);
  EXPECT_EQ(value.bytes.find(1)->second, "weights/fc");
  Fields histo = Decode(value.bytes.find(5)->second);
  EXPECT_DOUBLE_EQ(AsDouble(histo.fixed64.find(1)->second), -3.0);   // min
  EXPECT_NEAR(AsDouble(histo.fixed64.find(2)->second), 6.99, 1e-5);  // max
  EXPECT_DOUBLE_EQ(AsDouble(histo.fixed64.find(3)->second), 1000);   // num
  // Packed repeated doubles: bucket_limit (6) and bucket (7).
  std::string limits = histo.bytes.find(6)->second;
  std::string buckets = histo.bytes.find(7)->second;
  ASSERT_EQ(limits.size(), buckets.size());
  double total = 0, previous_limit = -1e300;
  for (size_t at = 0; at < buckets.size(); at += 8) {
    total += AsDouble(LittleEndian(buckets, at, 8));
    double limit = AsDouble(LittleEndian(limits, at, 8));
    EXPECT_GT(limit, previous_limit);
    previous_limit = limit;
  }
  EXPECT_DOUBLE_EQ(total, 1000);
}

TEST_F(EventWriterTest, TheReaderNoticesACorruptByte) {
  std::string path;
  {
    auto writer = EventWriter::Create(scratch().string());
    ASSERT_TRUE(writer.ok());
    path = (*writer)->path();
    ASSERT_TRUE((*writer)->AddScalar("x", 1, 1.0).ok());
  }
  std::string file = testing::ReadFile(path);
  file[file.size() - 6] ^= 0x10;
  std::vector<std::string> records;
  std::string error;
  EXPECT_FALSE(ReadRecords(file, &records, &error));
  EXPECT_EQ(error, "bad data crc");
}

// The HParams records, decoded with the field numbers of TensorBoard's
// published definitions (tensorflow/core/framework/summary.proto,
// tensorboard/plugins/hparams/plugin_data.proto and api.proto,
// google/protobuf/struct.proto), not with the writer's generated classes.
TEST_F(EventWriterTest, HparamsRecordsAreTensorBoardsPluginData) {
  std::string path;
  {
    auto writer = EventWriter::Create((scratch() / "tb").string());
    ASSERT_TRUE(writer.ok()) << writer.status();
    path = (*writer)->path();
    RunHparams hparams;
    hparams.settings = {{"optim_config.lr", 0.01},
                        {"model", std::string("mlp")},
                        {"run_config.skip_plots", false}};
    hparams.metric_tags = {"train/loss", "val/accuracy", "test/accuracy"};
    hparams.group_name = "config-0000abcd";
    hparams.start_time_secs = 1.7e9;
    ASSERT_TRUE((*writer)->AddHparams(hparams).ok());
    ASSERT_TRUE((*writer)->AddHparamsEnd(true, 1.7e9 + 5).ok());
  }
  std::vector<std::string> records = Records(path);
  ASSERT_EQ(records.size(), 4u);  // file_version, experiment, start, end
  // Event.summary = 5, Summary.value = 1, Value.tag = 1, Value.metadata = 9,
  // SummaryMetadata.plugin_data = 1, PluginData.plugin_name = 1, content = 2.
  const auto plugin_data = [&](size_t record, const std::string& tag) {
    Fields value = Decode(Decode(Decode(records[record]).bytes.find(5)->second)
                              .bytes.find(1)
                              ->second);
    EXPECT_EQ(value.bytes.find(1)->second, tag);
    EXPECT_TRUE(value.fixed32.empty() && !value.bytes.count(5));  // no value
    Fields plugin =
        Decode(Decode(value.bytes.find(9)->second).bytes.find(1)->second);
    EXPECT_EQ(plugin.bytes.find(1)->second, "hparams");
    Fields data = Decode(plugin.bytes.find(2)->second);
    EXPECT_FALSE(data.varints.count(1));  // version 0
    return data;
  };
  // HParamsPluginData.experiment = 2: time_created_secs = 3, hparam_infos =
  // 4 (name = 1, type = 4: STRING 1, BOOL 2, FLOAT64 3), metric_infos = 5
  // (name = 1: MetricName.tag = 2; dataset_type = 5: TRAINING 1,
  // VALIDATION 2).
  Fields experiment =
      Decode(plugin_data(1, "_hparams_/experiment").bytes.find(2)->second);
  EXPECT_EQ(AsDouble(experiment.fixed64.find(3)->second), 1.7e9);
  std::map<std::string, uint64_t> types;
  for (auto [it, end] = experiment.bytes.equal_range(4); it != end; ++it) {
    Fields info = Decode(it->second);
    types[info.bytes.find(1)->second] = info.varints.find(4)->second;
  }
  EXPECT_EQ(
      types,
      (std::map<std::string, uint64_t>{
          {"model", 1}, {"optim_config.lr", 3}, {"run_config.skip_plots", 2}}));
  std::vector<std::pair<std::string, uint64_t>> metrics;
  for (auto [it, end] = experiment.bytes.equal_range(5); it != end; ++it) {
    Fields info = Decode(it->second);
    auto type = info.varints.find(5);
    metrics.emplace_back(
        Decode(info.bytes.find(1)->second).bytes.find(2)->second,
        type == info.varints.end() ? 0 : type->second);
  }
  EXPECT_THAT(metrics, ::testing::ElementsAre(
                           std::make_pair(std::string("train/loss"), 1u),
                           std::make_pair(std::string("val/accuracy"), 2u),
                           std::make_pair(std::string("test/accuracy"), 0u)));
  // session_start_info = 3: hparams = 1 (map entries: key = 1, value = 2, a
  // google.protobuf.Value: number_value = 2, string_value = 3, bool_value =
  // 4), group_name = 4, start_time_secs = 5.
  Fields start = Decode(
      plugin_data(2, "_hparams_/session_start_info").bytes.find(3)->second);
  EXPECT_EQ(start.bytes.find(4)->second, "config-0000abcd");
  EXPECT_EQ(AsDouble(start.fixed64.find(5)->second), 1.7e9);
  std::map<std::string, Fields> values;
  for (auto [it, end] = start.bytes.equal_range(1); it != end; ++it) {
    Fields entry = Decode(it->second);
    values[entry.bytes.find(1)->second] = Decode(entry.bytes.find(2)->second);
  }
  ASSERT_EQ(values.size(), 3u);
  EXPECT_EQ(AsDouble(values["optim_config.lr"].fixed64.find(2)->second), 0.01);
  EXPECT_EQ(values["model"].bytes.find(3)->second, "mlp");
  EXPECT_EQ(values["run_config.skip_plots"].varints.find(4)->second, 0u);
  // session_end_info = 4: status = 1 (SUCCESS 1), end_time_secs = 2.
  Fields end = Decode(
      plugin_data(3, "_hparams_/session_end_info").bytes.find(4)->second);
  EXPECT_EQ(end.varints.find(1)->second, 1u);
  EXPECT_EQ(AsDouble(end.fixed64.find(2)->second), 1.7e9 + 5);
}

TEST_F(EventWriterTest, UnwritableDirectoryIsNamed) {
  std::ofstream(scratch() / "file") << "x";
  std::string dir = (scratch() / "file" / "tb").string();
  auto writer = EventWriter::Create(dir);
  ASSERT_FALSE(writer.ok());
  EXPECT_THAT(std::string(writer.status().message()), HasSubstr(dir));
}

}  // namespace
}  // namespace ouroboros
