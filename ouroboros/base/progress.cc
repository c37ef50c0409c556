#include "ouroboros/base/progress.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "glog/logging.h"

namespace ouroboros {

ProgressBar::ProgressBar(std::string label, int64_t total, int64_t start)
    : label_(std::move(label)),
      total_(std::max<int64_t>(total, 1)),
      start_(start),
      tty_(isatty(STDERR_FILENO) == 1),
      started_(Clock::now()),
      last_draw_(Clock::time_point::min()),
      last_decile_(static_cast<int>(10 * start / std::max<int64_t>(total, 1))) {
}

std::string ProgressBar::FormatDuration(double seconds) {
  int64_t s = static_cast<int64_t>(seconds + 0.5);
  if (s >= 3600) {
    return absl::StrFormat("%d:%02d:%02d", s / 3600, (s / 60) % 60, s % 60);
  }
  return absl::StrFormat("%d:%02d", s / 60, s % 60);
}

std::string ProgressBar::Line(int64_t done, const std::string& status) const {
  const double elapsed =
      std::chrono::duration<double>(Clock::now() - started_).count();
  const double rate = elapsed > 0 ? (done - start_) / elapsed : 0;
  const std::string eta =
      rate > 0 ? FormatDuration((total_ - done) / rate) : "?";
  return absl::StrFormat("%s %3d%% %d/%d [%s<%s, %.1f it/s] %s", label_,
                         static_cast<int>(100 * done / total_), done, total_,
                         FormatDuration(elapsed), eta, rate, status);
}

void ProgressBar::Update(int64_t done, const std::string& status) {
  if (finished_) return;
  if (!tty_) {
    int decile = static_cast<int>(10 * done / total_);
    if (decile > last_decile_) {
      last_decile_ = decile;
      LOG(INFO) << Line(done, status);
    }
    return;
  }
  Clock::time_point now = Clock::now();
  if (done < total_ && now - last_draw_ < std::chrono::milliseconds(100)) {
    return;
  }
  last_draw_ = now;
  // Fit the terminal as it is now (it may have been resized): a line longer
  // than the terminal wraps, and \r then redraws only its last row.
  winsize window = {};
  const int columns =
      ioctl(STDERR_FILENO, TIOCGWINSZ, &window) == 0 && window.ws_col > 0
          ? window.ws_col
          : 100;
  std::string text = Line(done, status);
  const int width =
      std::clamp(columns - static_cast<int>(text.size()) - 4, 0, 24);
  const int filled = static_cast<int>(width * done / total_);
  std::string line =
      width > 0 ? absl::StrCat("[", std::string(filled, '#'),
                               std::string(width - filled, '.'), "] ", text)
                : text;
  if (static_cast<int>(line.size()) >= columns) line.resize(columns - 1);
  std::fprintf(stderr, "\r\033[K%s", line.c_str());
  std::fflush(stderr);
  drawn_ = true;
}

void ProgressBar::Finish() {
  if (finished_) return;
  finished_ = true;
  if (tty_ && drawn_) {
    std::fprintf(stderr, "\r\033[K");
    std::fflush(stderr);
  }
}

}  // namespace ouroboros
