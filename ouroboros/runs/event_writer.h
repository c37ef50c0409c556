// Writes TensorBoard event files: scalars and histograms per step.
//
//   absl::StatusOr<std::unique_ptr<EventWriter>> w =
//       EventWriter::Create(run_dir + "/tensorboard");
//   (*w)->AddScalar("train/loss", step, 0.25);
//   // tensorboard --logdir saves/   shows it
//
// The file is a sequence of TFRecords (little-endian u64 length, masked
// CRC32C of the length, the serialized Event, masked CRC32C of it), the first
// one carrying file_version "brain.Event:2". Every record is flushed at once,
// so a killed run loses at most the record being written.
#ifndef OUROBOROS_RUNS_EVENT_WRITER_H_
#define OUROBOROS_RUNS_EVENT_WRITER_H_

#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ouroboros {

// TFRecord's masked form of Crc32c (crc32c.h): ((crc >> 15) | (crc << 17)) +
// 0xa282ead8.
uint32_t MaskedCrc32c(absl::string_view data);

// What TensorBoard's HParams view lists for a run: its settings (a config
// field's path -> its value) and the scalar tags to show beside them.
struct RunHparams {
  using Setting = std::variant<double, std::string, bool>;
  std::map<std::string, Setting> settings;
  // Scalar tags the run writes, e.g. "val/accuracy": the metric columns.
  std::vector<std::string> metric_tags;
  // Runs that differ only in their seed share it, so that TensorBoard
  // groups them (its session groups).
  std::string group_name;
  double start_time_secs = 0;
};

// Seconds since the Unix epoch, as TensorBoard's records count them.
double WallSeconds();

class EventWriter {
 public:
  // Creates `dir` if needed and a new
  // events.out.tfevents.<seconds>.<host>.<pid>.<n> file in it.
  static absl::StatusOr<std::unique_ptr<EventWriter>> Create(
      const std::string& dir);
  ~EventWriter();
  EventWriter(const EventWriter&) = delete;
  EventWriter& operator=(const EventWriter&) = delete;

  absl::Status AddScalar(const std::string& tag, int64_t step, double value);
  // 30 equal-width buckets between the smallest and the largest value.
  absl::Status AddHistogram(const std::string& tag, int64_t step,
                            const std::vector<float>& values);
  // A resumed run restarts at `step`: TensorBoard drops the earlier files'
  // points from `step` on (SessionLog.START), so the steps replayed after the
  // checkpoint are not drawn twice.
  absl::Status AddSessionStart(int64_t step, const std::string& checkpoint);
  // TensorBoard's HParams summaries (tensorboard_hparams.proto, plugin
  // "hparams"): the experiment (which settings and metrics there are) and
  // this run's session start (their values), as TensorBoard's own writer
  // records them. Once per event file.
  absl::Status AddHparams(const RunHparams& hparams);
  // The HParams session's end: success or failure, at `end_time_secs`.
  absl::Status AddHparamsEnd(bool success, double end_time_secs);
  absl::Status Flush();
  const std::string& path() const { return path_; }

 private:
  EventWriter(std::string path, std::FILE* file)
      : path_(std::move(path)), file_(file) {}
  absl::Status WriteRecord(const std::string& serialized_event);

  std::string path_;
  std::FILE* file_;
};

}  // namespace ouroboros

#endif  // OUROBOROS_RUNS_EVENT_WRITER_H_
