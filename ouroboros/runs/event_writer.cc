#include "ouroboros/runs/event_writer.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "ouroboros/base/crc32c.h"
#include "ouroboros/base/status_macros.h"
#include "ouroboros/runs/tensorboard_hparams.pb.h"
#include "ouroboros/runs/tfevent.pb.h"

namespace ouroboros {
namespace {

constexpr int kHistogramBuckets = 30;

void AppendLittleEndian(uint64_t value, int bytes, std::string* out) {
  for (int i = 0; i < bytes; ++i) {
    out->push_back(static_cast<char>((value >> (8 * i)) & 0xff));
  }
}

}  // namespace

double WallSeconds() {
  return std::chrono::duration<double>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

uint32_t MaskedCrc32c(absl::string_view data) {
  uint32_t crc = Crc32c(data);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

absl::StatusOr<std::unique_ptr<EventWriter>> EventWriter::Create(
    const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return absl::UnavailableError(absl::StrCat(
        dir, ": cannot create TensorBoard directory: ", ec.message()));
  }
  char host[256] = "localhost";
  gethostname(host, sizeof(host) - 1);
  // A counter keeps two writers of one process (one second apart or not)
  // from sharing a file.
  static std::atomic<int> counter{0};
  std::string path = absl::StrCat(dir, "/events.out.tfevents.",
                                  static_cast<int64_t>(WallSeconds()), ".",
                                  host, ".", getpid(), ".", counter++);
  std::FILE* file = std::fopen(path.c_str(), "wb");
  if (file == nullptr) {
    return absl::UnavailableError(absl::StrCat(
        path, ": cannot create event file (", std::strerror(errno), ")"));
  }
  std::unique_ptr<EventWriter> writer(new EventWriter(path, file));
  tfevent::Event event;
  event.set_wall_time(WallSeconds());
  event.set_file_version("brain.Event:2");
  RETURN_IF_ERROR(writer->WriteRecord(event.SerializeAsString()));
  return writer;
}

EventWriter::~EventWriter() {
  if (file_ != nullptr) std::fclose(file_);
}

absl::Status EventWriter::WriteRecord(const std::string& data) {
  std::string record;
  std::string length;
  AppendLittleEndian(data.size(), 8, &length);
  record += length;
  AppendLittleEndian(MaskedCrc32c(length), 4, &record);
  record += data;
  AppendLittleEndian(MaskedCrc32c(data), 4, &record);
  if (std::fwrite(record.data(), 1, record.size(), file_) != record.size() ||
      std::fflush(file_) != 0) {
    return absl::UnavailableError(
        absl::StrCat(path_, ": cannot write (", std::strerror(errno), ")"));
  }
  return absl::OkStatus();
}

absl::Status EventWriter::AddScalar(const std::string& tag, int64_t step,
                                    double value) {
  tfevent::Event event;
  event.set_wall_time(WallSeconds());
  event.set_step(step);
  tfevent::Summary::Value* v = event.mutable_summary()->add_value();
  v->set_tag(tag);
  v->set_simple_value(static_cast<float>(value));
  return WriteRecord(event.SerializeAsString());
}

absl::Status EventWriter::AddSessionStart(int64_t step,
                                          const std::string& checkpoint) {
  tfevent::Event event;
  event.set_wall_time(WallSeconds());
  event.set_step(step);
  tfevent::SessionLog* log = event.mutable_session_log();
  log->set_status(tfevent::SessionLog::START);
  log->set_checkpoint_path(checkpoint);
  return WriteRecord(event.SerializeAsString());
}

namespace {

namespace hp = tensorboard_hparams;

// TensorBoard's names (tensorboard/plugins/hparams/metadata.py).
constexpr char kHparamsPlugin[] = "hparams";
constexpr char kExperimentTag[] = "_hparams_/experiment";
constexpr char kSessionStartTag[] = "_hparams_/session_start_info";
constexpr char kSessionEndTag[] = "_hparams_/session_end_info";

// An event whose one summary value is `tag` with the hparams plugin's data.
std::string HparamsEvent(const char* tag, const hp::HParamsPluginData& data,
                         double wall_time) {
  tfevent::Event event;
  event.set_wall_time(wall_time);
  tfevent::Summary::Value* value = event.mutable_summary()->add_value();
  value->set_tag(tag);
  tfevent::SummaryMetadata::PluginData* plugin =
      value->mutable_metadata()->mutable_plugin_data();
  plugin->set_plugin_name(kHparamsPlugin);
  plugin->set_content(data.SerializeAsString());
  return event.SerializeAsString();
}

}  // namespace

absl::Status EventWriter::AddHparams(const RunHparams& hparams) {
  hp::HParamsPluginData experiment_data;
  hp::Experiment* experiment = experiment_data.mutable_experiment();
  experiment->set_time_created_secs(hparams.start_time_secs);
  hp::HParamsPluginData session_data;
  hp::SessionStartInfo* session = session_data.mutable_session_start_info();
  session->set_group_name(hparams.group_name);
  session->set_start_time_secs(hparams.start_time_secs);
  for (const auto& [name, setting] : hparams.settings) {
    hp::HParamInfo* info = experiment->add_hparam_infos();
    info->set_name(name);
    google::protobuf::Value& value = (*session->mutable_hparams())[name];
    if (const double* number = std::get_if<double>(&setting)) {
      info->set_type(hp::DATA_TYPE_FLOAT64);
      value.set_number_value(*number);
    } else if (const bool* flag = std::get_if<bool>(&setting)) {
      info->set_type(hp::DATA_TYPE_BOOL);
      value.set_bool_value(*flag);
    } else {
      info->set_type(hp::DATA_TYPE_STRING);
      value.set_string_value(std::get<std::string>(setting));
    }
  }
  for (const std::string& tag : hparams.metric_tags) {
    hp::MetricInfo* info = experiment->add_metric_infos();
    info->mutable_name()->set_tag(tag);
    if (absl::StartsWith(tag, "val/")) {
      info->set_dataset_type(hp::DATASET_VALIDATION);
    } else if (absl::StartsWith(tag, "train/")) {
      info->set_dataset_type(hp::DATASET_TRAINING);
    }
  }
  const double now = WallSeconds();
  RETURN_IF_ERROR(
      WriteRecord(HparamsEvent(kExperimentTag, experiment_data, now)));
  return WriteRecord(HparamsEvent(kSessionStartTag, session_data, now));
}

absl::Status EventWriter::AddHparamsEnd(bool success, double end_time_secs) {
  hp::HParamsPluginData data;
  hp::SessionEndInfo* end = data.mutable_session_end_info();
  end->set_status(success ? hp::STATUS_SUCCESS : hp::STATUS_FAILURE);
  end->set_end_time_secs(end_time_secs);
  return WriteRecord(HparamsEvent(kSessionEndTag, data, WallSeconds()));
}

absl::Status EventWriter::AddHistogram(const std::string& tag, int64_t step,
                                       const std::vector<float>& values) {
  if (values.empty()) return absl::OkStatus();
  tfevent::Event event;
  event.set_wall_time(WallSeconds());
  event.set_step(step);
  tfevent::Summary::Value* v = event.mutable_summary()->add_value();
  v->set_tag(tag);
  tfevent::HistogramProto* h = v->mutable_histo();
  auto [lo, hi] = std::minmax_element(values.begin(), values.end());
  const double min = *lo, max = *hi;
  double sum = 0, sum_squares = 0;
  for (float x : values) {
    sum += x;
    sum_squares += static_cast<double>(x) * x;
  }
  h->set_min(min);
  h->set_max(max);
  h->set_num(values.size());
  h->set_sum(sum);
  h->set_sum_squares(sum_squares);
  const int buckets = max > min ? kHistogramBuckets : 1;
  const double width = (max - min) / buckets;
  std::vector<double> counts(buckets, 0);
  for (float x : values) {
    int b = width > 0 ? static_cast<int>((x - min) / width) : 0;
    counts[std::min(b, buckets - 1)] += 1;
  }
  for (int b = 0; b < buckets; ++b) {
    h->add_bucket_limit(b + 1 == buckets ? max : min + width * (b + 1));
    h->add_bucket(counts[b]);
  }
  return WriteRecord(event.SerializeAsString());
}

absl::Status EventWriter::Flush() {
  if (std::fflush(file_) != 0) {
    return absl::UnavailableError(
        absl::StrCat(path_, ": cannot flush (", std::strerror(errno), ")"));
  }
  return absl::OkStatus();
}

}  // namespace ouroboros
