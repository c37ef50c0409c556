// A progress bar for long loops: rate, ETA and the latest metrics.
//
//   ProgressBar bar("epoch 3/10", /*total=*/938);
//   for (...) bar.Update(done, "loss 0.4123");
//   bar.Finish();
//
// On a terminal (stderr is a TTY) it redraws one line in place, at most 10
// times a second. Otherwise (a pipe, a log file, CI) it writes a plain log
// line at every 10% instead, so logs stay readable.
#ifndef OUROBOROS_BASE_PROGRESS_H_
#define OUROBOROS_BASE_PROGRESS_H_

#include <chrono>
#include <cstdint>
#include <string>

namespace ouroboros {

class ProgressBar {
 public:
  // `start` items may already be done (a resumed epoch).
  ProgressBar(std::string label, int64_t total, int64_t start = 0);
  ~ProgressBar() { Finish(); }

  void Update(int64_t done, const std::string& status);
  // Clears the bar on a terminal; idempotent.
  void Finish();

  // "1:02:03" / "2:03".
  static std::string FormatDuration(double seconds);

 private:
  using Clock = std::chrono::steady_clock;
  std::string Line(int64_t done, const std::string& status) const;

  const std::string label_;
  const int64_t total_;
  const int64_t start_;
  const bool tty_;
  const Clock::time_point started_;
  Clock::time_point last_draw_;
  int last_decile_ = -1;
  bool drawn_ = false;
  bool finished_ = false;
};

}  // namespace ouroboros

#endif  // OUROBOROS_BASE_PROGRESS_H_
